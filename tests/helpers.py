"""Helpers the tests import by name (fixtures live in conftest.py): repo paths, params edits, a git copy of the repo."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from vaeops.bundle.manifest import GRAPHS, MANIFEST, Manifest, file_entry
from vaeops.bundle.reports import EvaluationMetrics, ModelEstimates

REPO = Path(__file__).resolve().parents[1]
MNIST_DIR = (REPO / ".." / "shared" / "data" / "mnist").resolve()


def edit_params(path: Path, changes: dict[str, Any]) -> Path:
    """Set "section.key" values in a params.yaml file, keeping the rest."""
    raw = yaml.safe_load(path.read_text()) or {}
    for dotted, value in changes.items():
        section, key = dotted.split(".", 1)
        raw.setdefault(section, {})[key] = value
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def git_copy_of_repo(dest: Path, params_changes: dict[str, Any]) -> Path:
    """The repo's files as git sees them (committed or new, not ignored), with `params_changes` applied, committed
    into a fresh git repo at `dest`: what a fresh clone of the working tree would hold."""
    git = lambda *args, cwd: subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)  # noqa: E731
    listed = git("ls-files", "--cached", "--others", "--exclude-standard", "-z", cwd=REPO).stdout.split("\0")
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    edit_params(dest / "params.yaml", params_changes)
    git("init", "-q", cwd=dest)
    git("add", "-A", cwd=dest)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy", cwd=dest)
    return dest


def complete_params(sections: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The repo's params.yaml with `sections` merged in key by key: a complete params document, as stages require."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return raw


def write_stand_in_export(
    export_dir: Path,
    version: str,
    checkpoint: str,
    data_sha: str,
    checkpoint_sha: str = "c" * 64,
    likelihood: str = "bernoulli",
    tag: str | None = None,
) -> Manifest:
    """An export folder whose graph files are stand-in bytes (the gate checks their sha256, not their contents) and
    whose manifest is a valid one, written through the bundle schema."""
    export_dir.mkdir(parents=True, exist_ok=True)
    graphs = {}
    for name in GRAPHS:
        data = f"{tag or version}:{name}".encode()
        (export_dir / f"{name}.onnx").write_bytes(data)
        graphs[name] = file_entry(f"{name}.onnx", data, inputs=["x"], outputs=["x_hat"], max_abs_error={"x_hat": 0.0})
    manifest = Manifest(
        model_version=version,
        checkpoint=checkpoint,
        checkpoint_sha256=checkpoint_sha,
        epoch=1,
        params_sha256="p" * 64,
        data_sha256=data_sha,
        input_dim=64,
        latent_dim=3,
        image_shape=[8, 8],
        likelihood=likelihood,
        metrics={},
        vaeops_version="test",
        opset=20,
        parity={"images": 8, "atol": 1e-5, "rtol": 1e-4},
        versions={},
        graphs=graphs,
    )
    (export_dir / MANIFEST).write_text(manifest.to_json())
    return manifest


def evaluation_metrics(data_sha: str = "d" * 64, **models: dict[str, Any]) -> dict[str, Any]:
    """A complete, schema-valid reports/metrics.json: every estimate 0 unless `models` gives it, e.g.
    evaluation_metrics(vae={"nll": 30.0, "active_units": 5})."""
    entries = {
        name: ModelEstimates.model_validate({**{key: 0 for key in ModelEstimates.model_fields}, **values})
        for name, values in models.items()
    }
    metrics = EvaluationMetrics(
        dataset="digits",
        split="test",
        images=1,
        nll_images=1,
        pixels=64,
        binarize="none",
        seed=0,
        nll_k=1,
        elbo_ks=[1],
        precision="fp32",
        data_sha256=data_sha,
        models=entries,
    )
    return metrics.model_dump(mode="json")
