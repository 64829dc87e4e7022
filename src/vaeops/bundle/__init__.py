"""The model bundle: the exported folder's contract, as pydantic models, and the one place that reads and writes it.

A bundle is what the export stage writes to `models/onnx/` and what the promotion gate installs as `champion/`:
ONNX graphs and a gallery named with their sha256 in `manifest.json` (`manifest`), the input contract clients send
(`contract`), how a champion was installed (`install.json`, `install`) and the gallery of test images (`gallery`).
Reading a bundle imports neither torch nor onnxruntime, so the promotion gate, the champion history and the
torch-free server share it.
"""
