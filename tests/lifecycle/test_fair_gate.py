"""The fair gate on real checkpoints: both models scored on the challenger's test images, and the input contract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from helpers import evaluation_metrics, write_stand_in_export
from onnx_helpers import make_checkpoint, make_project
from vaeops.core.errors import ModelFileError
from vaeops.core.fileio import sha256_file
from vaeops.core.params import load_params
from vaeops.dataset.splits import manifest_sha256
from vaeops.lifecycle.promote import promote
from vaeops.model.checkpoint import load_checkpoint, save_checkpoint


def setup(root: Path):
    params, _ = make_project(root)
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["validate"] = {**raw["validate"], "report": str(root / "reports" / "validation.json")}
    raw["promote"] = {
        **raw["promote"],
        "champion_dir": str(root / "champion"),
        "decision": str(root / "promotion.json"),
        "history_dir": str(root / "history"),
        "nll_k": 8,
    }
    raw["evaluate"] = {**raw["evaluate"], "chunk_images": 8, "chunk_samples": 8}
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    (root / "reports").mkdir(exist_ok=True)
    data_sha = manifest_sha256(root / "data" / "prepared")
    (root / "reports" / "validation.json").write_text(json.dumps({"success": True, "data_sha256": data_sha}))
    return data_sha


def candidate(
    root: Path,
    data_sha: str,
    stored_nll: float,
    scale: float = 1.0,
    likelihood: str = "bernoulli",
    accept: bool = False,
) -> dict:
    """A model (decoder weights times `scale`: large scales make confident, badly wrong pixels) whose evaluation
    claims `stored_nll`, exported and put to the gate."""
    checkpoint = root / "models" / "vae" / "best.pt"
    make_checkpoint(checkpoint, data_sha, likelihood=likelihood)
    state = load_checkpoint(checkpoint)
    state["model_state"] = {
        k: v * scale if k.startswith("decoder_head") else v for k, v in state["model_state"].items()
    }
    save_checkpoint(checkpoint, state)
    (root / "reports" / "metrics.json").write_text(
        json.dumps(evaluation_metrics(data_sha, vae={"nll": stored_nll, "active_units": 3}))
    )
    params = load_params(root / "params.yaml", {"promote.accept_contract_change": True} if accept else None)
    write_export(root / "models" / "onnx", checkpoint, data_sha, likelihood)
    return promote(params)


def write_export(folder: Path, checkpoint: Path, data_sha: str, likelihood: str) -> None:
    """The export manifest the gate reads (graph files are stand-ins: the fair gate scores the checkpoints)."""
    sha = sha256_file(checkpoint)
    write_stand_in_export(folder, f"vae@{sha[:12]}", str(checkpoint), data_sha, sha, likelihood, tag=sha)


def test_a_challenger_that_only_looks_better_on_its_own_numbers_is_not_promoted(tmp_path):
    data_sha = setup(tmp_path)
    first = candidate(tmp_path, data_sha, stored_nll=40.0)
    assert first["promoted"] and (tmp_path / "champion" / "checkpoint.pt").is_file()
    # Its own evaluation claims 5 nats (far better), but scored on the same images it is far worse.
    worse = candidate(tmp_path, data_sha, stored_nll=5.0, scale=40.0)
    assert not worse["promoted"]
    same = worse["same_data_comparison"]
    assert same["challenger_nll"] > same["champion_nll"] and same["gain_ci95_high"] < 0
    assert same["images"] == 30 and same["k"] == 8
    assert any(r.startswith("fail: on the same 30 test images") for r in worse["reasons"])
    champion_before = json.loads((tmp_path / "champion" / "manifest.json").read_text())["model_version"]
    assert champion_before == first["challenger"]["model_version"]


def test_a_better_challenger_on_the_same_images_is_promoted(tmp_path):
    data_sha = setup(tmp_path)
    assert candidate(tmp_path, data_sha, stored_nll=10.0, scale=40.0)["promoted"]  # a poor first champion
    better = candidate(tmp_path, data_sha, stored_nll=60.0)  # claims worse, is better on the shared images
    assert better["promoted"], better["reasons"]
    same = better["same_data_comparison"]
    assert same["gain"] > 0.05 and same["gain_ci95_low"] > 0


def test_another_input_contract_needs_an_explicit_decision(tmp_path):
    data_sha = setup(tmp_path)
    assert candidate(tmp_path, data_sha, stored_nll=40.0)["promoted"]
    refused = candidate(tmp_path, data_sha, stored_nll=1.0, likelihood="gaussian")
    assert not refused["promoted"] and refused["same_data_comparison"] is None
    assert "fail: input contract changes (likelihood bernoulli -> gaussian)" in "\n".join(refused["reasons"])
    accepted = candidate(tmp_path, data_sha, stored_nll=99.0, likelihood="gaussian", accept=True)
    assert accepted["promoted"]
    assert "pass: input contract changes (likelihood bernoulli -> gaussian): accepted" in "\n".join(accepted["reasons"])


def test_a_champion_checkpoint_replaced_by_another_models_is_refused(tmp_path):
    data_sha = setup(tmp_path)
    assert candidate(tmp_path, data_sha, stored_nll=40.0)["promoted"]
    kept = tmp_path / "champion" / "checkpoint.pt"
    other = tmp_path / "other.pt"
    make_checkpoint(other, data_sha, seed=7)
    kept.write_bytes(other.read_bytes())
    with pytest.raises(ModelFileError, match="checkpoint.pt does not match its install.json"):
        candidate(tmp_path, data_sha, stored_nll=10.0)
