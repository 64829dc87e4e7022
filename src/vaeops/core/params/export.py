"""`export` section: which checkpoint becomes ONNX, where it goes, and how close ONNX must stay to PyTorch."""

from __future__ import annotations

from dataclasses import dataclass

from vaeops.core.errors import ParamsError


@dataclass(frozen=True)
class ExportParams:
    """`export` section: which checkpoint becomes ONNX, where it goes, and how close ONNX must stay to PyTorch."""

    checkpoint: str = "models/vae/best.pt"
    out_dir: str = "models/onnx"
    metrics: str = "reports/metrics.json"
    opset: int = 20
    parity_images: int = 256
    atol: float = 1e-5
    rtol: float = 1e-4
    gallery_images: int = 36

    def check(self) -> None:
        if not self.checkpoint.strip() or not self.out_dir.strip():
            raise ParamsError("export.checkpoint and export.out_dir must be non-empty paths")
        if not 18 <= self.opset <= 23:
            raise ParamsError(f"export.opset must be in [18, 23] (the opsets the exporter and onnxruntime share), got {self.opset}")
        if not 1 <= self.gallery_images <= 1000:
            raise ParamsError(f"export.gallery_images must be in [1, 1000], got {self.gallery_images}")
        if self.parity_images < 1:
            raise ParamsError(f"export.parity_images must be >= 1, got {self.parity_images}")
        if not (0 <= self.atol < 1 and 0 <= self.rtol < 1) or self.atol + self.rtol == 0:
            raise ParamsError(f"export.atol and export.rtol must be in [0, 1) and not both 0, got {self.atol}, {self.rtol}")
