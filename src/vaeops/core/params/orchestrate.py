"""`orchestrate` section: where the flow runs the parts of a stage (the training seeds): here, or on Dask."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from vaeops.core.params.base import Section

# What distributed.Client accepts as a scheduler address: tcp://, tls://, inproc:// or ucx://, a host and a port.
ADDRESS = re.compile(r"(tcp|tls|ucx)://[^\s/:]+:\d{1,5}")


class OrchestrateParams(Section):
    """`orchestrate` section: the flow's task runner for stage parts. Not a stage's param: where a part runs changes
    no output (the seeds define the work), so switching runners leaves dvc.lock and every artifact as they are."""

    runner: Literal["local", "dask"] = "local"  # local: one part after another in the flow's process
    address: str | None = None  # dask: an existing scheduler (tcp://host:8786); None = a LocalCluster started here
    workers: int = Field(2, ge=1)  # LocalCluster worker processes (with CUDA: one per GPU, at most)
    threads_per_worker: int = Field(1, ge=1)  # one task at a time per thread; torch's default thread count follows

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None and not ADDRESS.fullmatch(value):
            raise ValueError(f"orchestrate.address must look like tcp://host:8786 (or tls://), got {value!r}")
        return value
