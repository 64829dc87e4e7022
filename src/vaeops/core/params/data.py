"""`data` section: which data set the prepare stage loads and how it splits it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from vaeops.core.params.base import Number, Section

DATASETS = ("digits", "mnist", "fashion-mnist")


class DataParams(Section):
    """`data` section, read by the prepare stage."""

    dataset: Literal["digits", "mnist", "fashion-mnist"] = "digits"
    source_dir: str | None = None
    download: bool = False
    urls: list[str] = []
    # Every split needs images of every class, so neither fraction may be 0.
    val_fraction: Number = Field(0.1, gt=0, lt=1)
    test_fraction: Number = Field(0.2, gt=0, lt=1)
    seed: int = Field(0, ge=0)
    out_dir: str = "data/prepared"
    cache_dir: str = "data/raw"

    @field_validator("urls")
    @classmethod
    def _urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(("http://", "https://", "file://")):
                raise ValueError(f"data.urls: {url!r} is not an http(s):// or file:// base URL")
        return urls

    @model_validator(mode="after")
    def _fractions(self) -> DataParams:
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError("data.val_fraction + data.test_fraction must be below 1")
        return self
