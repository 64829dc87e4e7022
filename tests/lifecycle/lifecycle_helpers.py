"""Hand-made stand-ins for what validate, evaluate and export leave behind: the files the promotion gate reads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from helpers import REPO, evaluation_metrics, write_stand_in_export

DATA_SHA = "d" * 64


def write_candidate(
    root: Path, version: str, nll: float, collapsed: bool = False, validation_ok: bool = True, data_sha: str = DATA_SHA
) -> None:
    """A stand-in for what validate, evaluate and export leave behind: the files the gate reads."""
    export_dir = root / "models" / "onnx"
    if export_dir.exists():
        shutil.rmtree(export_dir)
    write_stand_in_export(export_dir, version, "models/vae/best.pt", data_sha)
    reports = root / "reports"
    reports.mkdir(exist_ok=True)
    (reports / "validation.json").write_text(json.dumps({"success": validation_ok, "data_sha256": DATA_SHA}))
    metrics = evaluation_metrics(
        data_sha,
        vae={"nll": nll, "active_units": 0 if collapsed else 5, "collapsed": collapsed},
        plugin={"nll": nll + 10, "active_units": 5},
    )
    (reports / "metrics.json").write_text(json.dumps(metrics))


def project_with_champions(root: Path, monkeypatch, versions: tuple[str, ...] = ("vae@v1", "vae@v2")) -> Path:
    """A scratch project (the repo's params.yaml, cwd there) where `versions` were promoted in turn, each with a
    lower stand-in NLL than the one before."""
    from vaeops.core.params import load_params
    from vaeops.lifecycle.promote import promote

    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    monkeypatch.chdir(root)
    for rank, version in enumerate(versions):
        write_candidate(root, version, nll=30.0 - rank)
        assert promote(load_params())["promoted"]
    return root
