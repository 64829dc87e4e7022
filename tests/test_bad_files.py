"""Bad files and params found by trying them: each stage names the file or key, exits non-zero, keeps what was there."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from helpers import REPO, complete_params
from vaeops.core.errors import DataError, ModelFileError, ParamsError
from vaeops.core.params import load_params
from vaeops.dataset.splits import load_manifest, load_split, write_prepared
from vaeops.serving.inference import load

SHAPE = (8, 8)


def vaeops(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vaeops.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def prepared(project: Path) -> Path:
    rng = np.random.default_rng(0)
    splits = {
        name: (rng.random((n, *SHAPE), dtype=np.float32), np.arange(n) % 10)
        for name, n in (("train", 40), ("val", 20), ("test", 20))
    }
    write_prepared(project / "data" / "prepared", splits, {"dataset": "digits", "image_shape": list(SHAPE)})
    return project / "data" / "prepared"


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_corrupt_split_is_a_clear_error_in_train_and_evaluate(prepared, damage):
    path = prepared / "train.npz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"not a zip file at all" * 10)
    with pytest.raises(DataError, match="train.npz is not a readable prepared split"):
        load_split(prepared, "train")
    for stage in (["train", "-S", "train.variant=vae"], ["evaluate"]):
        if stage == ["evaluate"]:
            shutil.copy(path, prepared / "test.npz")
        result = vaeops(*stage, cwd=prepared.parents[1])
        assert result.returncode == 2, result.stderr
        assert "is not a readable prepared split" in result.stderr and "Traceback" not in result.stderr


def test_an_unparsable_data_manifest_is_named(prepared):
    (prepared / "manifest.json").write_text("{not json")
    with pytest.raises(DataError, match="data manifest .*manifest.json is not readable JSON"):
        load_manifest(prepared)
    result = vaeops("validate", cwd=prepared.parents[1])
    assert (
        result.returncode == 2
        and "manifest.json is not readable JSON" in result.stderr
        and "Traceback" not in result.stderr
    )


def test_a_checkpoint_that_is_not_a_checkpoint_dict_is_refused_by_export(prepared):
    checkpoint = prepared.parents[1] / "models" / "vae" / "best.pt"
    checkpoint.parent.mkdir(parents=True)
    torch.save([torch.zeros(3)], checkpoint)
    result = vaeops("export", cwd=prepared.parents[1])
    assert result.returncode == 2 and "holds a list, not a vaeops checkpoint" in result.stderr, result.stderr


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m: m.pop("latent_dim"), "key 'latent_dim': Field required"),
        (lambda m: m.update(image_shape="8x8"), "key 'image_shape': Input should be a valid list, got '8x8'"),
        (lambda m: m.update(image_shape=[8, 9]), r"image_shape \[8, 9\] does not match input_dim 64"),
        (lambda m: m["graphs"]["decoder"].pop("sha256"), "key 'graphs.decoder.sha256': Field required"),
        (lambda m: m["graphs"]["decoder"].update(file="../decoder.onnx"), "not a file inside the bundle"),
        (lambda m: m.update(graphs=[]), "key 'graphs': Input should be a valid dictionary"),
    ],
)
def test_a_broken_export_manifest_is_named_by_the_library_the_service_and_the_gate(tmp_path, change, message):
    manifest = {
        "format": "vaeops-onnx/1",
        "model_version": "vae@x",
        "checkpoint": "models/vae/best.pt",
        "checkpoint_sha256": "c" * 64,
        "epoch": 1,
        "params_sha256": "p" * 64,
        "data_sha256": "d" * 64,
        "image_shape": [8, 8],
        "input_dim": 64,
        "latent_dim": 3,
        "likelihood": "bernoulli",
        "metrics": {},
        "vaeops_version": "0",
        "opset": 20,
        "parity": {"images": 1, "atol": 0, "rtol": 0},
        "versions": {},
        "graphs": {
            g: {"file": f"{g}.onnx", "sha256": "0" * 64, "bytes": 1, "inputs": [], "outputs": [], "max_abs_error": {}}
            for g in ("encoder", "decoder", "reconstruct", "reconstruct_mean")
        },
    }
    change(manifest)
    model_dir = tmp_path / "champion"
    model_dir.mkdir()
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match=message):
        load(model_dir)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(complete_params({"serve": {"model_dir": str(model_dir)}})))
    result = vaeops("serve", "--params", str(tmp_path / "params.yaml"), "-S", "serve.port=0", cwd=tmp_path)
    assert result.returncode == 2 and "manifest.json" in result.stderr and "Traceback" not in result.stderr


def test_lr_in_scientific_notation_is_a_number(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text((REPO / "params.yaml").read_text().replace("  lr: 0.001 ", "  lr: 1e-3  "))
    assert yaml.safe_load(path.read_text())["train"]["lr"] == "1e-3"  # what PyYAML makes of it
    assert load_params(path).train.lr == 0.001


def test_an_exploding_yaml_value_gives_a_short_message(tmp_path):
    # Anchors and aliases: five levels, each ten times the one before, 100,000 strings once expanded (a repr of
    # about 600 kB), in a few hundred bytes of YAML.
    levels = ["&a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 5)]
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  lr: [" + ", ".join(levels) + "]\n")
    with pytest.raises(ParamsError, match="train.lr: Input should be a valid number") as error:
        load_params(path)
    assert len(str(error.value)) < 400 and "characters)" in str(error.value)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "is empty; it needs the sections"),
        ("data:\n  seed: 1\n", "has no section(s) validate, drift, promote"),
    ],
)
def test_a_missing_or_empty_params_file_or_section_is_named(tmp_path, text, message):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError, match=re.escape(message)):
        load_params(path)
    emptied = yaml.safe_load((REPO / "params.yaml").read_text())
    emptied["train"] = None
    path.write_text(yaml.safe_dump(emptied))
    with pytest.raises(ParamsError, match="params section 'train' is empty"):
        load_params(path)
