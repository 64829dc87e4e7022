"""Export stage: the trained `vae` model as deterministic ONNX graphs, checked against PyTorch, written as a bundle.

Reads `models/vae/best.pt`, `data/prepared/` and `reports/metrics.json`; writes `models/onnx/` (the graphs, the
gallery and `manifest.json`, the bundle contract of `vaeops.bundle`). Modules: `export` (the stage function) and
`torchlib_cache` (the exporter's op registry, built once per process). The torch side of serving: `vaeops.serving`
reads what this writes and never imports it.
"""
