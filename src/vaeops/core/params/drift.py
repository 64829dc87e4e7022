"""`drift` section: how far the new training data may move from the champion's before a run warns or stops."""

from __future__ import annotations

from dataclasses import dataclass

from vaeops.core.errors import ParamsError


@dataclass(frozen=True)
class DriftParams:
    """`drift` section: the report's path, the warn and fail thresholds (KS statistic, total variation), the sample."""

    report: str = "reports/drift.json"
    warn: float = 0.1
    fail: float = 0.3
    sample: int = 2000

    def check(self) -> None:
        if not 0 < self.warn <= self.fail <= 1:
            raise ParamsError(f"drift.warn and drift.fail must satisfy 0 < warn <= fail <= 1, got {self.warn}, {self.fail}")
        if self.sample < 10:
            raise ParamsError(f"drift.sample must be >= 10 images, got {self.sample}")
