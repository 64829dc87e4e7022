"""`serve` section: where `vaeops serve` listens, which exported model it loads, and its request limits."""

from __future__ import annotations

from dataclasses import dataclass, field

from vaeops.core.errors import ParamsError


@dataclass(frozen=True)
class ServeParams:
    """`serve` section: where `vaeops serve` listens, which exported model it loads, and its request limits."""

    host: str = "127.0.0.1"
    port: int = 8000
    model_dir: str = "champion"
    max_batch: int = 256
    max_samples: int = 64
    max_body_bytes: int = 8_000_000
    threads: int = 0
    providers: list[str] = field(default_factory=list)

    def check(self) -> None:
        if not self.host.strip() or not self.model_dir.strip():
            raise ParamsError("serve.host and serve.model_dir must be non-empty")
        if not 0 <= self.port <= 65535:
            raise ParamsError(f"serve.port must be in [0, 65535], got {self.port}")
        for name in ("max_batch", "max_samples", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise ParamsError(f"serve.{name} must be >= 1, got {getattr(self, name)}")
        if self.threads < 0:
            raise ParamsError(f"serve.threads must be >= 0 (0 = onnxruntime's default), got {self.threads}")
