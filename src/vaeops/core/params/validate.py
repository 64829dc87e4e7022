"""`validate` section: bounds of the Great Expectations gate; null means the data set's default."""

from __future__ import annotations

from dataclasses import dataclass

from vaeops.core.errors import ParamsError
from vaeops.core.params.checks import check_fraction


@dataclass(frozen=True)
class ValidateParams:
    """`validate` section: bounds of the Great Expectations gate; null means the data set's default."""

    report: str = "reports/validation.json"
    min_rows: int | None = None
    class_share_min: float | None = None
    class_share_max: float | None = None
    ink_threshold: float = 0.5
    ink_fraction_min: float | None = None
    ink_fraction_max: float | None = None
    max_leaked_images: int = 0

    def check(self) -> None:
        check_fraction("validate.ink_threshold", self.ink_threshold)
        if self.max_leaked_images < 0:
            raise ParamsError("validate.max_leaked_images must be >= 0")
        if self.min_rows is not None and self.min_rows < 0:
            raise ParamsError(f"validate.min_rows must be >= 0, got {self.min_rows}")
        for low, high in (("class_share_min", "class_share_max"), ("ink_fraction_min", "ink_fraction_max")):
            lo, hi = getattr(self, low), getattr(self, high)
            for name, value in ((low, lo), (high, hi)):
                if value is not None and not 0 <= value <= 1:
                    raise ParamsError(f"validate.{name} must be in [0, 1], got {value}")
            if lo is not None and hi is not None and lo > hi:
                raise ParamsError(f"validate.{low} ({lo}) is above validate.{high} ({hi})")
