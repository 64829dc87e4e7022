"""`serve` section: where `vaeops serve` listens, which exported model it loads, and its request limits."""

from __future__ import annotations

from dataclasses import dataclass, field

from vaeops.core.errors import ParamsError


@dataclass(frozen=True)
class ServeParams:
    """`serve` section: where `vaeops serve` listens, which exported model it loads, its request limits and
    processes, and the Triton model repository `vaeops triton-repo` writes."""

    host: str = "127.0.0.1"
    port: int = 8000
    model_dir: str = "champion"
    max_batch: int = 256
    max_samples: int = 64
    max_body_bytes: int = 8_000_000
    threads: int = 0
    workers: int = 1
    providers: list[str] = field(default_factory=list)
    reload_seconds: float = 2.0
    admin_token: str = ""
    report_dir: str = "reports"
    max_explain_draws: int = 50_000
    triton_repo: str = "models/triton"
    triton_max_batch_size: int = 256
    triton_queue_delay_us: int = 200

    def check(self) -> None:
        if not self.host.strip() or not self.model_dir.strip():
            raise ParamsError("serve.host and serve.model_dir must be non-empty")
        if not 0 <= self.port <= 65535:
            raise ParamsError(f"serve.port must be in [0, 65535], got {self.port}")
        for name in ("max_batch", "max_samples", "max_body_bytes", "workers", "triton_max_batch_size", "max_explain_draws"):
            if getattr(self, name) < 1:
                raise ParamsError(f"serve.{name} must be >= 1, got {getattr(self, name)}")
        if self.threads < 0:
            raise ParamsError(f"serve.threads must be >= 0 (0 = the cores divided among the workers), got {self.threads}")
        if self.reload_seconds < 0:
            raise ParamsError(f"serve.reload_seconds must be >= 0 (0 = no polling), got {self.reload_seconds}")
        if self.triton_queue_delay_us < 0:
            raise ParamsError(f"serve.triton_queue_delay_us must be >= 0, got {self.triton_queue_delay_us}")
        if not self.triton_repo.strip():
            raise ParamsError("serve.triton_repo must be a non-empty path")
