"""Every JSON file the champion commands read, corrupt or partial: a message naming the file, exit 2, no traceback,
and nothing the command would have written changed."""

import hashlib
import subprocess
import sys

import pytest
from lifecycle_helpers import project_with_champions, write_candidate

FILES = {  # file -> the command that reads it
    "champion-history/history.json": ("champion", "list"),
    "champion-history/pin.json": ("champion", "list"),
    "champion/manifest.json": ("promote",),
    "champion/install.json": ("promote",),
    "champion/metrics.json": ("promote",),
    "reports/metrics.json": ("promote",),
    "reports/validation.json": ("promote",),
    "models/onnx/manifest.json": ("promote",),
    "champion-history/vae@v1/install.json": ("champion", "rollback", "vae@v1"),
}
DAMAGE = {
    "not JSON": lambda data: b"{not json",
    "not UTF-8": lambda data: b"\xff\xfe\x00{",
    "truncated": lambda data: data[: len(data) // 2],
    "a list": lambda data: b"[]",
    "empty object": lambda data: b"{}",
}


@pytest.fixture
def project(tmp_path, monkeypatch):
    project_with_champions(tmp_path, monkeypatch)
    (tmp_path / "champion-history" / "pin.json").write_text('{"pinned": null}')
    write_candidate(tmp_path, "vae@v3", nll=20.0)
    return tmp_path


def digest(folder) -> str:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != ".writer.lock")
    return hashlib.sha256(
        b"".join(p.relative_to(folder).as_posix().encode() + p.read_bytes() for p in files)
    ).hexdigest()


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("name", FILES)
def test_a_corrupt_json_file_is_named_with_exit_2_and_no_traceback(project, name, damage):
    path = project / name
    path.write_bytes(DAMAGE[damage](path.read_bytes()))
    before = {folder: digest(project / folder) for folder in ("champion", "champion-history")}
    run = subprocess.run(
        [sys.executable, "-m", "vaeops.cli", *FILES[name]], cwd=project, capture_output=True, text=True, timeout=120
    )
    if damage == "empty object" and name.endswith("validation.json"):
        assert run.returncode == 0 and "fail: validation did not pass" in run.stdout  # {} is a report of no success
        return
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert "Traceback" not in run.stderr and path.name in run.stderr, run.stderr
    assert before == {folder: digest(project / folder) for folder in ("champion", "champion-history")}
