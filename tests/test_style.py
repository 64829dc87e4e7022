"""Style is checked, not hoped for: ruff's lint rules and its formatter (line length 120) over the whole tree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO

RUFF = Path(sys.executable).parent / "ruff"
TREES = ["src", "flows", "bench", "tests"]


@pytest.mark.parametrize(
    "command", [["check", "--no-cache"], ["format", "--check", "--no-cache"]], ids=["check", "format"]
)
def test_ruff(command):
    result = subprocess.run([str(RUFF), *command, *TREES], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
