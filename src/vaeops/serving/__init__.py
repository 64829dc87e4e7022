"""Serving: the torch-free inference library and the HTTP service over a model bundle (the champion by default).

Reads a bundle (`champion/`, via `vaeops.bundle`) and never imports torch or the exporter (an import-linter contract
and a test with torch blocked say so). `inference` loads a bundle with onnxruntime
(`from vaeops.serving.inference import load`); `serve` is `vaeops serve`: the JSON API, the Open Inference Protocol
(`oip`), the page (`page`, `explain`), Prometheus metrics (`metrics`), worker processes (`launch`), the switch to a
new champion (`reload`); `triton` writes the bundle as a Triton model repository (`vaeops triton-repo`).
"""
