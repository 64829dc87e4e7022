"""`validate` section: bounds of the Great Expectations gate; null means the data set's default."""

from __future__ import annotations

from pydantic import Field, model_validator

from vaeops.core.params.base import Number, Section


def share():
    """A share in [0, 1], or null for the data set's default."""
    return Field(None, ge=0, le=1)


class ValidateParams(Section):
    """`validate` section: bounds of the Great Expectations gate; null means the data set's default."""

    report: str = "reports/validation.json"
    min_rows: int | None = Field(None, ge=0)
    class_share_min: Number | None = share()
    class_share_max: Number | None = share()
    ink_threshold: Number = Field(0.5, ge=0, lt=1)
    ink_fraction_min: Number | None = share()
    ink_fraction_max: Number | None = share()
    max_leaked_images: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> ValidateParams:
        for low, high in (("class_share_min", "class_share_max"), ("ink_fraction_min", "ink_fraction_max")):
            lo, hi = getattr(self, low), getattr(self, high)
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"validate.{low} ({lo}) is above validate.{high} ({hi})")
        return self
