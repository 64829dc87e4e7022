"""`data` section: which data set the prepare stage loads and how it splits it."""

from __future__ import annotations

from dataclasses import dataclass, field

from vaeops.core.errors import ParamsError
from vaeops.core.params.checks import check_fraction

DATASETS = ("digits", "mnist", "fashion-mnist")


@dataclass(frozen=True)
class DataParams:
    """`data` section, read by the prepare stage."""

    dataset: str = "digits"
    source_dir: str | None = None
    download: bool = False
    urls: list[str] = field(default_factory=list)
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    seed: int = 0
    out_dir: str = "data/prepared"
    cache_dir: str = "data/raw"

    def check(self) -> None:
        if self.dataset not in DATASETS:
            raise ParamsError(f"data.dataset: unknown data set {self.dataset!r}; choose one of {', '.join(DATASETS)}")
        for name, value in (("data.val_fraction", self.val_fraction), ("data.test_fraction", self.test_fraction)):
            check_fraction(name, value)
            if value == 0:
                raise ParamsError(f"{name} must be above 0: every split needs images of every class")
        if self.val_fraction + self.test_fraction >= 1:
            raise ParamsError("data.val_fraction + data.test_fraction must be below 1")
        if self.seed < 0:
            raise ParamsError(f"data.seed must be >= 0, got {self.seed}")
        for url in self.urls:
            if not url.startswith(("http://", "https://", "file://")):
                raise ParamsError(f"data.urls: {url!r} is not an http(s):// or file:// base URL")
