"""`serve` section: where `vaeops serve` listens, which exported model it loads, and its request limits."""

from __future__ import annotations

from pydantic import Field

from vaeops.core.params.base import Number, Section


class ServeParams(Section):
    """`serve` section: where `vaeops serve` listens, which exported model it loads, its request limits and
    processes, and the Triton model repository `vaeops triton-repo` writes."""

    host: str = Field("127.0.0.1", min_length=1)
    port: int = Field(8000, ge=0, le=65535)
    grpc_port: int | None = Field(None, ge=0, le=65535)  # the OIP over gRPC on its own port; None = off
    model_dir: str = Field("champion", min_length=1)
    max_batch: int = Field(256, ge=1)
    max_samples: int = Field(64, ge=1)
    max_body_bytes: int = Field(8_000_000, ge=1)
    threads: int = Field(0, ge=0)  # 0 = the cores divided among the workers
    workers: int = Field(1, ge=1)
    concurrent_runs: int = Field(1, ge=1)  # model calls at once per worker (Triton's instance count); others queue
    providers: list[str] = []
    reload_seconds: Number = Field(2.0, ge=0)  # 0 = no polling
    admin_token: str = ""
    report_dir: str = "reports"
    max_explain_draws: int = Field(50_000, ge=1)
    triton_repo: str = Field("models/triton", min_length=1)
    triton_max_batch_size: int = Field(256, ge=1)
    triton_queue_delay_us: int = Field(200, ge=0)
