"""Promotion gate on hand-made exports, metrics and validation reports: who wins, and the champion is never
half-replaced."""

import json
import shutil
from pathlib import Path

import pytest
from lifecycle_helpers import write_candidate

from helpers import REPO
from vaeops.cli import main
from vaeops.core.errors import DataError, ModelFileError
from vaeops.core.fileio import sha256_file
from vaeops.core.params import load_params
from vaeops.lifecycle import promote as promote_mod
from vaeops.lifecycle.promote import decide, promote


def tree(path: Path) -> dict[str, str]:
    """Every file under `path` with its sha256: equal trees mean an untouched champion."""
    return {str(p.relative_to(path)): sha256_file(p) for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture
def project(tmp_path, monkeypatch):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_first_model_is_promoted_and_served_from_the_champion_dir(project):
    write_candidate(project, "sample@aaa", nll=30.0)
    decision = promote(load_params())
    assert decision["promoted"] and decision["previous_champion"] is None
    assert any("no champion yet" in reason for reason in decision["reasons"])
    champion = project / "champion"
    assert tree(champion)["encoder.onnx"] == sha256_file(project / "models/onnx/encoder.onnx")
    assert json.loads((champion / "metrics.json").read_text())["models"]["vae"]["nll"] == 30.0
    assert json.loads((project / "reports/promotion.json").read_text()) == decision
    promote_mod.verify_export(champion)  # the copy is a loadable export: sha256 of every graph matches


@pytest.mark.parametrize("nll, promoted", [(31.0, False), (29.97, False), (29.9, True)])
def test_challenger_must_beat_the_champion_by_the_margin(project, nll, promoted):
    write_candidate(project, "sample@aaa", nll=30.0)
    promote(load_params())
    before = tree(project / "champion")
    write_candidate(project, "sample@bbb", nll=nll)
    decision = promote(load_params())  # margin 0.05 nats in params.yaml
    assert decision["promoted"] is promoted
    assert decision["previous_champion"]["model_version"] == "sample@aaa"
    if promoted:
        assert decision["champion"] == "sample@bbb"
        assert json.loads((project / "champion/manifest.json").read_text())["model_version"] == "sample@bbb"
    else:
        assert decision["champion"] == "sample@aaa"
        assert tree(project / "champion") == before
        assert any(reason.startswith("fail: test NLL") for reason in decision["reasons"])


@pytest.mark.parametrize(
    "kwargs, reason",
    [
        ({"validation_ok": False}, "fail: validation did not pass"),
        ({"collapsed": True}, "fail: posterior collapsed"),
        ({"data_sha": "e" * 64}, "fail: the validation report is for other data"),
    ],
)
def test_failed_checks_block_even_a_much_better_model(project, kwargs, reason):
    write_candidate(project, "sample@aaa", nll=30.0)
    promote(load_params())
    before = tree(project / "champion")
    write_candidate(project, "sample@bbb", nll=20.0, **kwargs)
    decision = promote(load_params())
    assert not decision["promoted"]
    assert reason in "\n".join(decision["reasons"])
    assert tree(project / "champion") == before


def test_a_rejected_first_model_leaves_an_empty_champion_dir(project):
    write_candidate(project, "sample@aaa", nll=30.0, collapsed=True)
    decision = promote(load_params())
    assert not decision["promoted"] and decision["champion"] is None
    assert tree(project / "champion") == {}


def test_tampered_export_is_refused_and_champion_kept(project):
    write_candidate(project, "sample@aaa", nll=30.0)
    promote(load_params())
    before = tree(project / "champion")
    write_candidate(project, "sample@bbb", nll=20.0)
    (project / "models/onnx/decoder.onnx").write_bytes(b"truncated")
    with pytest.raises(ModelFileError, match="does not match the export manifest"):
        promote(load_params())
    assert tree(project / "champion") == before


def test_missing_metrics_is_a_clear_error(project):
    write_candidate(project, "sample@aaa", nll=30.0)
    (project / "reports/metrics.json").unlink()
    with pytest.raises(DataError, match="evaluation metrics not found"):
        promote(load_params())
    assert not (project / "champion").exists()


def test_a_failure_while_installing_leaves_the_old_champion(project, monkeypatch):
    write_candidate(project, "sample@aaa", nll=30.0)
    promote(load_params())
    before = tree(project / "champion")
    write_candidate(project, "sample@bbb", nll=20.0)

    def disk_full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(promote_mod.shutil, "copyfile", disk_full)
    with pytest.raises(OSError):
        promote(load_params())
    assert tree(project / "champion") == before
    assert [p.name for p in project.iterdir() if p.name.startswith(".champion")] == []


def test_decide_lists_every_failed_check():
    candidate = {
        "validation_passed": False,
        "validated_data_sha256": "x",
        "data_sha256": "x",
        "parity": None,
        "active_units": 0,
        "collapsed": True,
        "nll": 40.0,
    }
    promoted, reasons = decide(candidate, {"model_version": "m", "data_sha256": "x", "nll": 30.0}, 0.05)
    assert not promoted
    assert [r.split(":")[0] for r in reasons] == ["fail"] * 4


def test_cli_prints_the_decision(project, capsys):
    write_candidate(project, "sample@aaa", nll=30.0)
    assert main(["promote"]) == 0
    out = capsys.readouterr().out
    assert "PROMOTED: sample@aaa" in out and "reports/promotion.json" in out
