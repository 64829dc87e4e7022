"""`export` section: which checkpoint becomes ONNX, where it goes, and how close ONNX must stay to PyTorch."""

from __future__ import annotations

from pydantic import Field

from vaeops.core.params.base import Number, Section


class ExportParams(Section):
    """`export` section: which checkpoint becomes ONNX, where it goes, and how close ONNX must stay to PyTorch."""

    checkpoint: str = Field("models/vae/best.pt", min_length=1)
    out_dir: str = Field("models/onnx", min_length=1)
    metrics: str = "reports/metrics.json"
    opset: int = Field(20, ge=18, le=23)  # the opsets the exporter and onnxruntime share
    parity_images: int = Field(256, ge=1)
    atol: Number = Field(1e-5, ge=0)
    rtol: Number = Field(1e-4, ge=0)
    gallery_images: int = Field(36, ge=1, le=1000)
