"""Export stage: the trained VAE as deterministic ONNX graphs with metadata, checked against PyTorch, plus a
manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import torch
from torch import nn

from vaeops.bundle import gallery
from vaeops.bundle.manifest import (
    MANIFEST,
    METADATA_PREFIX,
    GraphEntry,
    Manifest,
    Parity,
    file_entry,
)
from vaeops.bundle.reports import EvaluationMetrics
from vaeops.core import __version__
from vaeops.core.artifacts import read_artifact
from vaeops.core.errors import ExportError
from vaeops.core.fileio import (
    atomic_directory,
    sha256_bytes,
    sha256_file,
)
from vaeops.core.params import Params, load_params
from vaeops.core.progress import Progress
from vaeops.dataset import splits
from vaeops.export.graphs import check_graph, example_inputs, export_graph, graph_specs, set_metadata
from vaeops.model.checkpoint import load_model


def compare(
    name: str, expected: dict[str, np.ndarray], actual: dict[str, np.ndarray], atol: float, rtol: float
) -> dict[str, float]:
    """Element-wise |actual - expected| <= atol + rtol * |expected| on every output; ExportError naming the worst
    one."""
    report = {}
    for output, reference in expected.items():
        got = actual[output]
        if got.shape != reference.shape:
            raise ExportError(f"{name}.{output}: onnxruntime shape {got.shape} differs from PyTorch {reference.shape}")
        error = np.abs(got.astype(np.float64) - reference)
        excess = error - (atol + rtol * np.abs(reference))
        worst = int(np.argmax(excess))
        if not np.all(np.isfinite(got)) or excess.flat[worst] > 0:
            raise ExportError(
                f"{name}.{output}: onnxruntime differs from PyTorch beyond atol={atol}, rtol={rtol}: "
                f"max |diff| {error.max():.3g} (at flat index {worst}, torch {reference.flat[worst]:.6g}, "
                f"onnx {got.flat[worst]:.6g}); previous export left untouched"
            )
        report[output] = float(error.max())
    return report


def parity(
    name: str, proto_bytes: bytes, module: nn.Module, feeds: dict[str, np.ndarray], atol: float, rtol: float
) -> dict[str, float]:
    """Run the same batch through PyTorch and onnxruntime (CPU) and compare every output."""
    session = onnxruntime.InferenceSession(proto_bytes, providers=["CPUExecutionProvider"])
    output_names = [output.name for output in session.get_outputs()]
    actual = dict(zip(output_names, session.run(output_names, feeds)))
    with torch.inference_mode():
        result = module(*(torch.from_numpy(feeds[inp.name]) for inp in session.get_inputs()))
    result = result if isinstance(result, tuple) else (result,)
    expected = {key: value.double().numpy() for key, value in zip(output_names, result)}
    return compare(name, expected, actual, atol, rtol)


def headline_metrics(path: Path, model_name: str, data_sha256: str) -> dict[str, Any]:
    """The evaluation numbers of this model (`models.<name>` in reports/metrics.json) with their context; {} when
    the file is absent or did not measure this model. Metrics of other data are refused rather than embedded."""
    if not path.exists():
        return {}
    metrics = read_artifact(path, EvaluationMetrics, "evaluation metrics", ExportError)
    if metrics.data_sha256 != data_sha256:
        raise ExportError(
            f"{path} measured data {metrics.data_sha256[:12]}..., but the model was trained on "
            f"{data_sha256[:12]}...; re-run `vaeops evaluate` before exporting"
        )
    entry = metrics.models.get(model_name)
    if entry is None:
        return {}
    context = metrics.model_dump(include={"dataset", "split", "images", "nll_k"})
    return {**context, **entry.model_dump()}


def describe_model(
    state: dict[str, Any],
    checkpoint: Path,
    checkpoint_sha: str,
    image_shape: tuple[int, ...],
    metrics: dict[str, float],
) -> dict[str, Any]:
    """The facts every exported file and the manifest carry about the model they came from."""
    if "params" not in state or "data_sha256" not in state:
        raise ExportError(f"{checkpoint} lacks 'params' or 'data_sha256'; it was not written by `vaeops train`")
    config = state["model_config"]
    return {
        "model_version": f"{checkpoint.parent.name}@{checkpoint_sha[:12]}",
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": checkpoint_sha,
        "epoch": state.get("epoch"),
        "params_sha256": sha256_bytes(json.dumps(state["params"], sort_keys=True, default=str).encode("utf-8")),
        "data_sha256": state["data_sha256"],
        "input_dim": config["input_dim"],
        "latent_dim": config["latent_dim"],
        "image_shape": list(image_shape),
        "likelihood": config["likelihood"],
        "metrics": metrics,
        "vaeops_version": __version__,
    }


def metadata_props(info: dict[str, Any], graph: str) -> dict[str, str]:
    """The model description as ONNX metadata_props: flat string pairs under the vaeops. prefix."""
    keys = (
        "model_version",
        "checkpoint_sha256",
        "params_sha256",
        "data_sha256",
        "latent_dim",
        "likelihood",
        "vaeops_version",
    )
    props = {f"{METADATA_PREFIX}{key}": str(info[key]) for key in keys}
    props[f"{METADATA_PREFIX}image_shape"] = json.dumps(info["image_shape"])
    props[f"{METADATA_PREFIX}metrics"] = json.dumps(info["metrics"], sort_keys=True)
    props[f"{METADATA_PREFIX}graph"] = graph
    return props


def export(params: Params) -> dict[str, Any]:
    """Export the configured checkpoint, check every graph, and swap models/onnx/ in only if all checks pass."""
    cfg = params.export
    checkpoint = Path(cfg.checkpoint)
    prepared = params.data.out_dir
    model, state = load_model(checkpoint, expected_data_sha256=splits.manifest_sha256(prepared))
    images, labels = splits.load_split(prepared, "test")
    image_shape = tuple(images.shape[1:])
    if int(np.prod(image_shape)) != model.config.input_dim:
        raise ExportError(f"test images {image_shape} do not match the model's input size {model.config.input_dim}")
    metrics = headline_metrics(Path(cfg.metrics), checkpoint.parent.name, state.get("data_sha256", ""))
    info = describe_model(state, checkpoint, sha256_file(checkpoint), image_shape, metrics)

    # Parity batch: real test images, and seeded noise / latents for the graphs that take them.
    rng = np.random.default_rng(0)
    x = np.ascontiguousarray(images[: cfg.parity_images].reshape(-1, model.config.input_dim), dtype=np.float32)
    noise = rng.standard_normal((len(x), model.config.latent_dim), dtype=np.float32)
    batches = {"x": x, "eps": noise, "z": noise}

    graphs: dict[str, bytes] = {}
    entries: dict[str, Any] = {}
    specs = graph_specs(model)
    progress = Progress(len(specs), "export: graphs exported and checked", unit="graph")
    for name, (module, input_names, output_names) in specs.items():
        proto = export_graph(
            module,
            example_inputs(input_names, model.config.input_dim, model.config.latent_dim),
            output_names,
            cfg.opset,
        )
        set_metadata(proto, metadata_props(info, name))
        check_graph(name, proto)
        data = proto.SerializeToString()
        errors = {}
        for size in (len(x), 1):  # the full batch and a single image: the batch dimension must really be dynamic
            feeds = {inp: batches[inp][:size] for inp in input_names}
            errors = {
                k: max(v, errors.get(k, 0.0)) for k, v in parity(name, data, module, feeds, cfg.atol, cfg.rtol).items()
            }
        graphs[name] = data
        entries[name] = GraphEntry(
            **file_entry(f"{name}.onnx", data, inputs=input_names, outputs=output_names, max_abs_error=errors)
        )
        progress.update()
    progress.close()

    gallery_bytes, gallery_entry = gallery.encode(images, labels, gallery.pick(labels, cfg.gallery_images))
    manifest = Manifest(
        **info,
        opset=cfg.opset,
        parity=Parity(images=len(x), atol=cfg.atol, rtol=cfg.rtol),
        versions={"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__},
        graphs=entries,
        gallery=gallery_entry,
    )
    with atomic_directory(cfg.out_dir, marker=MANIFEST) as staging:
        (staging / gallery.GALLERY_FILE).write_bytes(gallery_bytes)
        for name, data in graphs.items():
            (staging / entries[name].file).write_bytes(data)
        (staging / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")
    return manifest


def run_cli(args: Any) -> None:
    """`vaeops export`: export, check, and print where the graphs went."""
    params = load_params(args.params, args.overrides)
    manifest = export(params)
    out_dir = params.export.out_dir
    for name, entry in manifest.graphs.items():
        worst = max(entry.max_abs_error.values())
        print(f"{name:17s} {entry.bytes:>10,d} bytes  max |onnx - torch| {worst:.2e}  -> {out_dir}/{entry.file}")
    print(
        f"model {manifest.model_version}  latent {manifest.latent_dim}  image {manifest.image_shape}  "
        f"opset {manifest.opset}"
    )
