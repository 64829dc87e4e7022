"""Hand-made stand-ins for what validate, evaluate and export leave behind: the files the promotion gate reads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from vaeops.core.fileio import sha256_bytes
from vaeops.serving.inference import GRAPHS, MANIFEST_FORMAT

DATA_SHA = "d" * 64


def write_candidate(root: Path, version: str, nll: float, collapsed: bool = False, validation_ok: bool = True, data_sha: str = DATA_SHA) -> None:
    """A stand-in for what validate, evaluate and export leave behind: the files the gate reads."""
    export_dir = root / "models" / "onnx"
    if export_dir.exists():
        shutil.rmtree(export_dir)
    export_dir.mkdir(parents=True)
    graphs = {}
    for name in GRAPHS:
        data = f"{version}:{name}".encode()
        (export_dir / f"{name}.onnx").write_bytes(data)
        graphs[name] = {"file": f"{name}.onnx", "sha256": sha256_bytes(data), "bytes": len(data)}
    manifest = {
        "format": MANIFEST_FORMAT,
        "model_version": version,
        "checkpoint": "models/vae/best.pt",
        "data_sha256": data_sha,
        "parity": {"images": 8, "atol": 1e-5, "rtol": 1e-4},
        "graphs": graphs,
    }
    (export_dir / "manifest.json").write_text(json.dumps(manifest))
    reports = root / "reports"
    reports.mkdir(exist_ok=True)
    (reports / "validation.json").write_text(json.dumps({"success": validation_ok, "data_sha256": DATA_SHA}))
    metrics = {"models": {"vae": {"nll": nll, "active_units": 0 if collapsed else 5, "collapsed": collapsed},
                          "plugin": {"nll": nll + 10, "active_units": 5, "collapsed": False}}}
    (reports / "metrics.json").write_text(json.dumps(metrics))
