"""One table of ATen-to-ONNX functions per process for torch.onnx.export, instead of one per exported graph."""

from __future__ import annotations

from typing import Any


def reuse_torchlib_registry() -> None:
    """Build the exporter's table of ATen-to-ONNX functions once per process instead of once per graph.

    torch.onnx.export(dynamo=True) rebuilds it from onnxscript's torchlib on every call (1.8 s of the 2.5 s a small
    graph takes on a 2-core AMD EPYC); it is only read while exporting without a custom translation table, as here.
    Caching it halved the export stage (4 graphs: 6.8 s -> 3.3 s after the first). Where a torch release no longer
    has this private classmethod, nothing is changed and the export only stays slower.
    """
    from torch.onnx._internal.exporter import _registration

    factory = getattr(_registration.ONNXRegistry, "from_torchlib", None)
    if factory is None or getattr(factory, "_vaeops_cached", False):
        return
    build, built = factory.__func__, {}

    def from_torchlib(cls, *args: Any, **kwargs: Any):
        key = (cls, args, tuple(sorted(kwargs.items())))
        if key not in built:
            built[key] = build(cls, *args, **kwargs)
        return built[key]

    from_torchlib._vaeops_cached = True  # type: ignore[attr-defined]
    _registration.ONNXRegistry.from_torchlib = classmethod(from_torchlib)
