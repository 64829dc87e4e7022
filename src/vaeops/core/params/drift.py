"""`drift` section: how far the new training data may move from the champion's before a run warns or stops."""

from __future__ import annotations

from pydantic import Field, model_validator

from vaeops.core.params.base import Number, Section


class DriftParams(Section):
    """`drift` section: the report's path, the warn and fail thresholds (KS statistic, total variation), the sample."""

    report: str = "reports/drift.json"
    gate: str = "reports/drift_gate.json"  # the verdict alone: what training depends on in dvc.yaml
    warn: Number = Field(0.1, gt=0, le=1)
    fail: Number = Field(0.3, gt=0, le=1)
    sample: int = Field(2000, ge=10)

    @model_validator(mode="after")
    def _ordered(self) -> DriftParams:
        if self.warn > self.fail:
            raise ValueError(f"drift.warn ({self.warn}) must not be above drift.fail ({self.fail})")
        return self
