"""Shared fixtures: repo paths, a scratch project folder with its own params.yaml, the real MNIST when present."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import pytest

from helpers import MNIST_DIR, REPO, edit_params


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
