"""Real `dvc repro` in a temporary git copy of the repo: runs, is a no-op the second time, pushes/pulls, stops at the
gate."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from browser import offline_page, screenshot
from helpers import edit_params, git_copy_of_repo

# Small settings for every stage in dvc.yaml, so the whole pipeline runs in seconds. Add your stage's keys here.
TINY_PARAMS: dict = {
    "train.epochs": 2,
    "train.replicates": 1,
    "evaluate.recon_samples": 2,
    "evaluate.elbo_ks": [1, 10],
    "evaluate.elbo_repeats": 2,
    "evaluate.nll_k": 10,
    "export.parity_images": 16,
}


def run(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "DVC_NO_ANALYTICS": "1",
        "DO_NOT_TRACK": "1",
    }
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def dvc(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    return run([str(Path(sys.executable).parent / "dvc"), *args], cwd, check)


# Data marks of each rendered plot (lines with a drawn path, points): an empty plot has axes and a legend only.
DATA_MARKS = """[...document.querySelectorAll('svg.marks')].map((svg) => [...svg.querySelectorAll('g.role-mark path')]
  .filter((p) => (p.getAttribute('d') || '').length > 20).length)"""


def check_offline_plots(repo: Path) -> None:
    """`vaeops plots` writes a page whose every plot renders in a browser that can reach nothing but files."""
    vaeops = str(Path(sys.executable).parent / "vaeops")
    run([vaeops, "plots", "--out", "plots-page"], cwd=repo)
    html = (repo / "plots-page" / "index.html").read_text()
    assert "cdn.jsdelivr.net" not in html
    specs = html.count("var spec = ")  # one per plot DVC writes
    with offline_page() as (page, problems):
        page.goto((repo / "plots-page" / "index.html").as_uri())
        page.wait_for_function(f"document.querySelectorAll('svg.marks').length === {specs}", timeout=30_000)
        marks = page.evaluate(DATA_MARKS)
        images = page.evaluate("[...document.images].map((img) => img.naturalWidth)")
        screenshot(page, "dvc-plots")
    # five evaluation plots and three learning-curve panels (loss, recon, kl: train and validation of every model)
    assert specs == 8 and len(images) == 6 and all(images), images
    empty = [i for i, count in enumerate(marks) if count < 2]
    assert not empty, f"plots {empty} draw no data: {marks}"
    assert [p for p in problems if "Vega" not in p] == [], problems


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """The repo's files as git sees them (committed or new, not ignored), committed into a fresh git repo."""
    return git_copy_of_repo(tmp_path / "repo", TINY_PARAMS)


@pytest.mark.slow
def test_repro_is_reproducible_versioned_and_gated(repo_copy):
    # A fresh clone has no data/prepared, so prepare runs; validate may be skipped when dvc.lock already
    # records the report for the same data (prepare is deterministic).
    first = dvc("repro", cwd=repo_copy).stdout
    assert "Running stage 'prepare'" in first
    assert json.loads((repo_copy / "reports" / "validation.json").read_text())["success"] is True
    lock = (repo_copy / "dvc.lock").read_text()
    check_offline_plots(repo_copy)
    # One metrics file, and it fits an 80-column terminal.
    shown = dvc("metrics", "show", cwd=repo_copy).stdout
    assert shown.splitlines()[1].startswith("reports/headline.json") and len(shown.splitlines()) == 2, shown
    assert max(len(line) for line in shown.splitlines()) <= 80, shown

    again = dvc("repro", cwd=repo_copy).stdout
    assert "Running stage" not in again, again
    assert (repo_copy / "dvc.lock").read_text() == lock
    assert "up to date" in dvc("status", cwd=repo_copy).stdout

    # The default local remote works with no cloud account: push, lose the cache and the data, pull them back.
    dvc("push", cwd=repo_copy)
    manifest = (repo_copy / "data" / "prepared" / "manifest.json").read_bytes()
    shutil.rmtree(repo_copy / ".dvc" / "cache")
    shutil.rmtree(repo_copy / "data" / "prepared")
    dvc("pull", cwd=repo_copy)
    assert (repo_copy / "data" / "prepared" / "manifest.json").read_bytes() == manifest
    assert "up to date" in dvc("status", cwd=repo_copy).stdout

    # The remote verifies what it downloads (verify = true): a corrupted remote object fails the pull instead of
    # being installed.
    train_md5 = hashlib.md5((repo_copy / "data" / "prepared" / "train.npz").read_bytes()).hexdigest()
    remote_object = repo_copy / ".dvc-storage" / "files" / "md5" / train_md5[:2] / train_md5[2:]
    remote_object.write_bytes(b"corrupted" + remote_object.read_bytes()[9:])
    shutil.rmtree(repo_copy / ".dvc" / "cache")
    shutil.rmtree(repo_copy / "data" / "prepared")
    corrupt = dvc("pull", cwd=repo_copy, check=False)
    assert corrupt.returncode != 0, corrupt.stdout
    train = repo_copy / "data" / "prepared" / "train.npz"
    assert not train.exists() or hashlib.md5(train.read_bytes()).hexdigest() == train_md5

    # A failing gate stops `dvc repro`: non-zero exit, the failed expectation named, the lock not advanced.
    edit_params(repo_copy / "params.yaml", {"validate.class_share_max": 0.05})
    failed = dvc("repro", cwd=repo_copy, check=False)
    assert failed.returncode != 0
    assert "class share bounds" in failed.stdout + failed.stderr
    assert (repo_copy / "dvc.lock").read_text() == lock
