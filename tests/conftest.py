"""Shared fixtures: repo paths, a scratch project folder with its own params.yaml, the real MNIST when present."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import configuration

from helpers import MNIST_DIR, REPO, edit_params

# hypothesis keeps its example database and Unicode tables in ./.hypothesis by default: tests leave the checkout alone
configuration.set_hypothesis_home_dir(Path(os.environ.get("TMPDIR", "/tmp")) / "vaeops-hypothesis")


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


# What the checkout guard leaves out: version control, the environment and caches that Python and pytest keep.
UNWATCHED = {".git", ".venv", ".venv-triton", "__pycache__", ".pytest_cache", ".ruff_cache", ".import_linter_cache"}


def checkout_state() -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file of the checkout, tracked, untracked or ignored (champion-history/ included)."""
    state = {}
    for folder, names, files in os.walk(REPO):
        names[:] = [name for name in names if name not in UNWATCHED]
        for name in files:
            path = Path(folder) / name
            try:
                info = path.lstat()
            except FileNotFoundError:
                continue
            state[str(path.relative_to(REPO))] = (info.st_size, info.st_mtime_ns)
    return state


@pytest.fixture(scope="session", autouse=True)
def checkout_untouched():
    """Tests write only under their temporary folders: fail the run if any file of the checkout changed."""
    before = checkout_state()
    yield
    after = checkout_state()
    changed = sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))
    if changed:
        pytest.fail(f"the tests changed the checkout: {', '.join(changed[:20])}", pytrace=False)


@pytest.fixture
def dvc_definition(tmp_path: Path) -> Path:
    """The pipeline's definition (dvc.yaml, params.yaml, DVC's config) in a scratch git repo: reading it through
    DVC writes DVC's own lock and index files, which must not land in the checkout."""
    for name in ("dvc.yaml", "params.yaml", ".dvcignore", ".dvc/config"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, tmp_path / name)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    return tmp_path
