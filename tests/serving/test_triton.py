"""The Triton model repository: configs parsed with Triton's own schema and checked against the ONNX graphs."""

from __future__ import annotations

import shutil
import subprocess
import sys

import onnx
import pytest
import yaml
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from onnx_helpers import make_checkpoint, make_project
from vaeops.core.errors import ExportError, ModelFileError
from vaeops.core.fileio import sha256_file
from vaeops.core.params import load_params
from vaeops.dataset.splits import manifest_sha256
from vaeops.export.export import export
from vaeops.serving.inference import GRAPHS
from vaeops.serving.triton import write_repository

ONNX_TO_TRITON = {onnx.TensorProto.FLOAT: model_config_pb2.TYPE_FP32}


def parse(path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


@pytest.fixture(scope="module")
def exported_once(tmp_path_factory):
    """One real export for the module (exporting takes seconds); each test works on a copy of its project."""
    root = tmp_path_factory.mktemp("triton")
    params, _ = make_project(root)
    return root, export(params).model_dump(mode="json")


@pytest.fixture
def exported(exported_once, tmp_path):
    root, manifest = exported_once
    shutil.copytree(root, tmp_path, dirs_exist_ok=True)
    (tmp_path / "params.yaml").write_text((root / "params.yaml").read_text().replace(str(root), str(tmp_path)))
    return tmp_path, load_params(tmp_path / "params.yaml"), manifest


def test_every_config_parses_with_tritons_schema_and_matches_its_graph(exported):
    root, params, manifest = exported
    result = write_repository(params.export.out_dir, root / "triton", max_batch_size=64, queue_delay_us=150)
    assert result["version"] == 1 and result["written"]
    for graph in GRAPHS:
        config = parse(root / "triton" / graph / "config.pbtxt")
        model = onnx.load(root / "triton" / graph / "1" / "model.onnx")
        assert config.name == graph and config.platform == "onnxruntime_onnx" and config.max_batch_size == 64
        assert config.dynamic_batching.max_queue_delay_microseconds == 150
        assert [g.kind for g in config.instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_AUTO]
        for declared, actual in ((config.input, model.graph.input), (config.output, model.graph.output)):
            assert (
                [t.name for t in declared]
                == [v.name for v in actual]
                == manifest["graphs"][graph]["inputs" if declared is config.input else "outputs"]
            )
            for tensor, value in zip(declared, actual):
                dims = [d.dim_value for d in value.type.tensor_type.shape.dim]
                assert list(tensor.dims) == dims[1:]  # the batch dimension is Triton's, not in dims
                assert tensor.data_type == ONNX_TO_TRITON[value.type.tensor_type.elem_type]
        assert config.parameters["vaeops_model_version"].string_value == manifest["model_version"]
        assert sha256_file(root / "triton" / graph / "1" / "model.onnx") == manifest["graphs"][graph]["sha256"]


def test_a_new_model_becomes_the_next_version_and_the_same_one_changes_nothing(exported):
    root, params, _ = exported
    repo = root / "triton"
    write_repository(params.export.out_dir, repo, 8, 0)
    first = sha256_file(repo / "encoder" / "1" / "model.onnx")
    again = write_repository(params.export.out_dir, repo, 8, 0)
    assert (again["version"], again["written"]) == (1, False) and not (repo / "encoder" / "2").exists()
    make_checkpoint(root / "models" / "vae" / "best.pt", manifest_sha256(root / "data" / "prepared"), seed=5)
    export(params)
    result = write_repository(params.export.out_dir, repo, 8, 0)
    assert result["version"] == 2 and result["written"]
    assert sha256_file(repo / "encoder" / "1" / "model.onnx") == first  # the old version stays for rollback
    assert sha256_file(repo / "encoder" / "2" / "model.onnx") != first
    assert not [p for p in root.iterdir() if p.name.startswith(".triton")]  # no staging folder left behind


def test_a_tampered_export_writes_nothing(exported):
    root, params, _ = exported
    path = root / "models" / "onnx" / "decoder.onnx"
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(ModelFileError, match="decoder.onnx does not match"):
        write_repository(params.export.out_dir, root / "triton", 8, 0)
    assert not (root / "triton").exists()


def test_a_users_file_or_folder_at_the_target_is_refused_and_kept(exported, tmp_path):
    root, params, _ = exported
    mine = tmp_path / "notes.txt"
    mine.write_text("my notes")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(ExportError, match="is a file, not a Triton repository folder"):
        write_repository(params.export.out_dir, mine, 8, 0)
    assert mine.read_text() == "my notes" and sorted(p.name for p in tmp_path.iterdir()) == before
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "cat.jpg").write_bytes(b"cat")
    with pytest.raises(ExportError, match="holds cat.jpg"):
        write_repository(params.export.out_dir, folder, 8, 0)
    assert [p.name for p in folder.iterdir()] == ["cat.jpg"]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "vaeops.cli",
            "triton-repo",
            "--params",
            str(root / "params.yaml"),
            "-S",
            f"serve.model_dir={params.export.out_dir}",
            "-S",
            f"serve.triton_repo={mine}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "is a file" in result.stderr and "Traceback" not in result.stderr


def test_cli_writes_the_repository_of_serve_model_dir(exported):
    root, _, manifest = exported
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["serve"].update(triton_repo=str(root / "repo"), triton_max_batch_size=32, triton_queue_delay_us=100)
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    load_params(root / "params.yaml")
    result = subprocess.run(
        [sys.executable, "-m", "vaeops.cli", "triton-repo", "--params", str(root / "params.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert f"{manifest['model_version']} as version 1" in result.stdout
    assert parse(root / "repo" / "decoder" / "config.pbtxt").max_batch_size == 32
