"""The export stage: ONNX graphs pass the checker, match PyTorch, carry metadata, and fail safely."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import TensorProto, helper

import vaeops.export.export as export_module
import vaeops.export.graphs as graphs_module
from helpers import evaluation_metrics
from onnx_helpers import IMAGE_SHAPE, make_checkpoint, make_project
from vaeops.cli import main
from vaeops.core.errors import CheckpointError, ExportError
from vaeops.core.fileio import sha256_file
from vaeops.dataset.splits import manifest_sha256
from vaeops.serving.inference import GRAPHS, METADATA_PREFIX


# What `vaeops evaluate` writes, through its schema: context, then one entry per model folder.
def metrics_file(data_sha: str) -> str:
    return json.dumps(
        {
            **evaluation_metrics(
                data_sha, vae={"nll": 91.5, "elbo": -95.25, "active_units": 3}, plugin={"nll": 99.0, "elbo": -101.0}
            ),
            "images": 30,
            "nll_k": 100,
        }
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A tiny project exported once through the CLI, with an evaluation metrics file present."""
    root = tmp_path_factory.mktemp("export")
    params, model = make_project(root)
    (root / "reports").mkdir()
    (root / "reports" / "metrics.json").write_text(metrics_file(manifest_sha256(params.data.out_dir)))
    assert main(["export", "--params", str(root / "params.yaml")]) == 0
    out_dir = root / "models" / "onnx"
    return root, params, model, out_dir, json.loads((out_dir / "manifest.json").read_text())


def test_manifest_names_every_graph_with_its_sha256(project):
    _, params, _, out_dir, manifest = project
    assert set(manifest["graphs"]) == set(GRAPHS)
    for entry in manifest["graphs"].values():
        assert sha256_file(out_dir / entry["file"]) == entry["sha256"]
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(
        ["manifest.json", "gallery.npz", *(f"{g}.onnx" for g in GRAPHS)]
    )
    assert sha256_file(out_dir / "gallery.npz") == manifest["gallery"]["sha256"] and manifest["gallery"]["images"] == 30
    assert manifest["checkpoint_sha256"] == sha256_file(params.export.checkpoint)
    assert manifest["parity"] == {"images": 30, "atol": params.export.atol, "rtol": params.export.rtol}


def test_graphs_pass_the_checker_are_deterministic_and_have_a_dynamic_batch(project):
    out_dir = project[3]
    for graph in GRAPHS:
        proto = onnx.load(str(out_dir / f"{graph}.onnx"))
        onnx.checker.check_model(proto, full_check=True)
        assert not {node.op_type for node in proto.graph.node} & graphs_module.RANDOM_OPS
        for value in (*proto.graph.input, *proto.graph.output):
            assert value.type.tensor_type.shape.dim[0].dim_param, f"{graph}.{value.name} has a fixed batch"


def test_metadata_props_describe_the_model(project):
    _, _, model, out_dir, manifest = project
    for graph in GRAPHS:
        props = {p.key: p.value for p in onnx.load(str(out_dir / f"{graph}.onnx")).metadata_props}
        assert props[f"{METADATA_PREFIX}graph"] == graph
        assert props[f"{METADATA_PREFIX}model_version"] == manifest["model_version"]
        assert props[f"{METADATA_PREFIX}latent_dim"] == str(model.config.latent_dim)
        assert json.loads(props[f"{METADATA_PREFIX}image_shape"]) == list(IMAGE_SHAPE)
        assert props[f"{METADATA_PREFIX}likelihood"] == "bernoulli"
        assert len(props[f"{METADATA_PREFIX}params_sha256"]) == 64
        assert props[f"{METADATA_PREFIX}data_sha256"] == manifest["data_sha256"]
        embedded = json.loads(props[f"{METADATA_PREFIX}metrics"])
        assert {k: embedded[k] for k in ("dataset", "split", "images", "nll_k", "nll", "elbo", "active_units")} == {
            "dataset": "digits",
            "split": "test",
            "images": 30,
            "nll_k": 100,
            "nll": 91.5,
            "elbo": -95.25,
            "active_units": 3,
        }
        assert embedded["collapsed"] is False and "plugin" not in json.dumps(embedded)


def test_onnxruntime_matches_pytorch_on_a_new_batch(project):
    _, params, model, out_dir, _ = project
    rng = np.random.default_rng(5)
    x = rng.random((7, IMAGE_SHAPE[0] * IMAGE_SHAPE[1]), dtype=np.float32)
    eps = rng.standard_normal((7, model.config.latent_dim), dtype=np.float32)
    with torch.inference_mode():
        tx, teps = torch.from_numpy(x), torch.from_numpy(eps)
        expected = {
            "encoder": [t.numpy() for t in model.encode(tx)],
            "decoder": [model.pixel_mean(model.decode(teps)).numpy()],
            "reconstruct": [model(tx, teps).numpy()],
            "reconstruct_mean": [model(tx).numpy()],
        }
    feeds = {
        "encoder": {"x": x},
        "decoder": {"z": eps},
        "reconstruct": {"x": x, "eps": eps},
        "reconstruct_mean": {"x": x},
    }
    for graph, reference in expected.items():
        session = onnxruntime.InferenceSession(str(out_dir / f"{graph}.onnx"), providers=["CPUExecutionProvider"])
        for got, want in zip(session.run(None, feeds[graph]), reference):
            np.testing.assert_allclose(got, want, rtol=params.export.rtol, atol=params.export.atol)
    # eps = 0 is the mean reconstruction.
    session = onnxruntime.InferenceSession(str(out_dir / "reconstruct.onnx"), providers=["CPUExecutionProvider"])
    zero = session.run(None, {"x": x, "eps": np.zeros_like(eps)})[0]
    np.testing.assert_allclose(zero, expected["reconstruct_mean"][0], rtol=params.export.rtol, atol=params.export.atol)


def test_reexport_is_byte_identical(project):
    _, params, _, out_dir, manifest = project
    before = {path.name: path.read_bytes() for path in out_dir.iterdir()}
    assert json.loads(export_module.export(params).to_json()) == manifest
    assert {path.name: path.read_bytes() for path in out_dir.iterdir()} == before


def test_graphs_hold_no_path_of_this_checkout(project):
    # same model, same bytes in any clone: the exporter's stack traces (absolute source paths) are stripped
    _, _, _, out_dir, _ = project
    source_dir = str(export_module.__file__).rsplit("/", 1)[0].encode()
    for graph in out_dir.glob("*.onnx"):
        assert source_dir not in graph.read_bytes(), graph.name
        nodes = onnx.load(graph).graph.node
        assert nodes and not any(p.key == graphs_module.STACK_TRACE_KEY for n in nodes for p in n.metadata_props)


def test_parity_failure_raises_and_keeps_the_previous_export(project, monkeypatch):
    _, params, _, out_dir, manifest = project
    before = {p.name: p.read_bytes() for p in out_dir.iterdir()}
    real_export_graph = export_module.export_graph

    def export_drifted(module, inputs, output_names, opset):
        # An exporter that gets one weight slightly wrong: the ONNX graph no longer computes what PyTorch does.
        drifted = type(module)(type(module.vae)(module.vae.config)).eval()
        drifted.vae.load_state_dict(module.vae.state_dict())
        with torch.no_grad():
            drifted.vae.encoder_head.bias.add_(1e-2)
            drifted.vae.decoder_head.bias.add_(1e-2)
        return real_export_graph(drifted, inputs, output_names, opset)

    monkeypatch.setattr(export_module, "export_graph", export_drifted)
    with pytest.raises(ExportError, match="differs from PyTorch beyond atol"):
        export_module.export(params)
    assert {p.name: p.read_bytes() for p in out_dir.iterdir()} == before


def test_gaussian_likelihood_exports(tmp_path):
    params, model = make_project(tmp_path, likelihood="gaussian", hidden=(12, 10))
    manifest = export_module.export(params).model_dump(mode="json")
    assert manifest["likelihood"] == "gaussian" and manifest["metrics"] == {}
    x = np.random.default_rng(0).random((4, 64), dtype=np.float32)
    session = onnxruntime.InferenceSession(str(tmp_path / "models" / "onnx" / "reconstruct_mean.onnx"))
    with torch.inference_mode():
        np.testing.assert_allclose(
            session.run(None, {"x": x})[0], model(torch.from_numpy(x)).numpy(), rtol=1e-4, atol=1e-5
        )


def test_metrics_of_other_data_are_refused(tmp_path):
    params, _ = make_project(tmp_path)
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "metrics.json").write_text(metrics_file("f" * 64))
    with pytest.raises(ExportError, match="re-run `vaeops evaluate`"):
        export_module.export(params)


def test_checkpoint_from_other_data_is_refused(tmp_path):
    params, _ = make_project(tmp_path)
    make_checkpoint(tmp_path / "models" / "vae" / "best.pt", "0" * 64)
    with pytest.raises(CheckpointError, match="trained on data"):
        export_module.export(params)
    assert not (tmp_path / "models" / "onnx").exists()


def test_cli_reports_a_missing_checkpoint(tmp_path, capsys):
    make_project(tmp_path)
    (tmp_path / "models" / "vae" / "best.pt").unlink()
    assert main(["export", "--params", str(tmp_path / "params.yaml")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_random_ops_and_fixed_batches_are_rejected():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    noisy = helper.make_model(
        helper.make_graph([helper.make_node("RandomNormalLike", ["x"], ["y"])], "noisy", [x], [y]),
        opset_imports=[helper.make_opsetid("", 20)],
        ir_version=10,
    )
    with pytest.raises(ExportError, match="random ops"):
        graphs_module.check_graph("noisy", noisy)
    fixed = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])
    relu = helper.make_model(
        helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "fixed", [fixed], [y]),
        opset_imports=[helper.make_opsetid("", 20)],
        ir_version=10,
    )
    with pytest.raises(ExportError, match="fixed batch"):
        graphs_module.check_graph("fixed", relu)


def test_compare_states_the_tolerance_and_the_worst_element():
    reference = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert (
        export_module.compare("g", {"y": reference}, {"y": reference.astype(np.float32) + 1e-7}, 1e-5, 1e-4)["y"] < 1e-6
    )
    with pytest.raises(ExportError, match=r"g\.y: .*max \|diff\| 0\.01 .*flat index 3"):
        export_module.compare("g", {"y": reference}, {"y": reference + np.array([[0, 0], [0, 0.01]])}, 1e-5, 1e-4)
    with pytest.raises(ExportError, match="shape"):
        export_module.compare("g", {"y": reference}, {"y": reference[:1]}, 1e-5, 1e-4)
