"""Export and serving: the trained `vae` model as ONNX, the torch-free inference library, and the HTTP service.

export reads `models/vae/best.pt`, `data/prepared/` and `reports/metrics.json` and writes `models/onnx/` (graphs and
`manifest.json`); `inference` loads such a folder with onnxruntime (`from vaeops.serving.inference import load`);
`serve` is `vaeops serve` over the champion folder: the JSON API, the Open Inference Protocol (`oip`), Prometheus
metrics (`metrics`), worker processes (`launch`), the switch to a new champion (`reload`); `triton` writes the champion as a Triton model repository.
"""
