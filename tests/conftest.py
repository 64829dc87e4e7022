"""Shared fixtures: repo paths, a scratch project folder with its own params.yaml, the real MNIST when present."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

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


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch working directory holding a copy of the repo's params.yaml; relative output paths land here."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def set_params(project: Path) -> Callable[..., Path]:
    """Edit the scratch params.yaml: set_params({"data.dataset": "mnist"}); returns its path."""
    return lambda changes=None: edit_params(project / "params.yaml", changes or {})


@pytest.fixture
def mnist_dir() -> Path:
    """The real MNIST IDX files in ../shared/data/mnist; skips the test when they are not there."""
    if not (MNIST_DIR / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"real MNIST not found at {MNIST_DIR}")
    return MNIST_DIR
