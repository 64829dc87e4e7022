"""Atomic folder swaps: a kill at any instant leaves the old or the new folder, and leftovers go at the next write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vaeops.core import fileio
from vaeops.core.fileio import atomic_directory


def folder(path: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(path.iterdir())}


def test_swap_replaces_the_folder_and_leaves_nothing_beside_it(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a").write_text("old")
    with atomic_directory(tmp_path / "out") as staging:
        (staging / "b").write_text("new")
    assert folder(tmp_path / "out") == {"b": "new"} and [p.name for p in tmp_path.iterdir()] == ["out"]
    assert fileio._exchange(tmp_path / "out", tmp_path / "out") in (True, False)  # usable here, or cleanly refused


def test_a_failure_inside_the_block_keeps_the_old_folder(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a").write_text("old")
    with pytest.raises(RuntimeError), atomic_directory(tmp_path / "out") as staging:
        (staging / "a").write_text("half")
        raise RuntimeError("killed")
    assert folder(tmp_path / "out") == {"a": "old"} and [p.name for p in tmp_path.iterdir()] == ["out"]


def test_the_next_write_restores_a_folder_moved_aside_and_removes_stale_staging(tmp_path):
    # What a kill between the two renames of the fallback swap, and a kill during a write, leave behind:
    (tmp_path / ".out.old").mkdir()
    (tmp_path / ".out.old" / "a").write_text("old")
    (tmp_path / ".out.x1y2.tmp").mkdir()
    (tmp_path / ".out.x1y2.tmp" / "a").write_text("half")
    fileio.clear_debris(tmp_path / "out")
    assert folder(tmp_path / "out") == {"a": "old"} and [p.name for p in tmp_path.iterdir()] == ["out"]


def test_the_fallback_swap_without_renameat2_works_too(tmp_path, monkeypatch):
    monkeypatch.setattr(fileio, "_exchange", lambda a, b: False)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a").write_text("old")
    with atomic_directory(tmp_path / "out") as staging:
        (staging / "a").write_text("new")
    assert folder(tmp_path / "out") == {"a": "new"} and [p.name for p in tmp_path.iterdir()] == ["out"]


WRITER = """
import sys
from pathlib import Path
from vaeops.core.fileio import atomic_directory
target, n = Path(sys.argv[1]), 0
print("ready", flush=True)
while True:
    n += 1
    with atomic_directory(target) as staging:
        for i in range(20):
            (staging / f"part{i}").write_text(str(n) * 50_000)
"""


def test_sigkill_at_random_instants_never_leaves_a_missing_or_mixed_folder(tmp_path):
    target, written = tmp_path / "out", False
    for attempt in range(8):
        process = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True)
        assert process.stdout.readline().strip() == "ready"
        time.sleep(0.05 + 0.037 * attempt)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        fileio.clear_debris(target)  # what the next write does first
        assert target.exists() or not written, f"no folder at all after kill {attempt}"
        written = written or target.exists()
        if target.exists():
            contents = set(folder(target).values())
            assert len(folder(target)) == 20 and len(contents) == 1, f"a mixed folder after kill {attempt}"
        assert [p.name for p in tmp_path.iterdir() if p.name != "out"] == []


def test_an_output_never_replaces_a_folder_or_file_the_project_did_not_write(tmp_path):
    user = tmp_path / "docs"
    user.mkdir()
    (user / "thesis.tex").write_text("years of work")
    with pytest.raises(fileio.ForeignFolder, match="holds files but no manifest.json"):
        with fileio.atomic_directory(user, marker="manifest.json") as staging:
            (staging / "manifest.json").write_text("{}")
    assert (user / "thesis.tex").read_text() == "years of work" and not list(tmp_path.glob(".docs.*"))
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(fileio.ForeignFolder, match="is a file"):
        with fileio.atomic_directory(tmp_path / "notes.txt", marker="manifest.json"):
            pass
    earlier = tmp_path / "export"
    for text in ("one", "two"):  # an earlier output (it has the marker) is replaced; an empty folder too
        with fileio.atomic_directory(earlier, marker="manifest.json") as staging:
            (staging / "manifest.json").write_text(text)
    assert (earlier / "manifest.json").read_text() == "two"
