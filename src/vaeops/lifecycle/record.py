"""Recording with DVC: make dvc.lock match what a flow run produced (`dvc commit`), then `dvc push` it to the remote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from vaeops.core.errors import ParamsError, RecordError
from vaeops.core.fileio import atomic_path
from vaeops.core.params import load_params

DVC_TIMEOUT = 1800  # seconds: a push of MNIST-sized outputs to a slow remote, not a hang


def run_dvc(args: list[str], cwd: str | Path = ".") -> str:
    """Run the real dvc CLI of this Python environment; a failure becomes a RecordError quoting dvc's own message."""
    command = [sys.executable, "-m", "dvc", *args]
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    try:
        proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=DVC_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise RecordError(f"`dvc {' '.join(args)}` did not finish within {DVC_TIMEOUT} s in {cwd}") from None
    if proc.returncode != 0:
        detail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:]) or "no output"
        raise RecordError(f"`dvc {' '.join(args)}` failed in {Path(cwd).resolve()} (exit {proc.returncode}):\n{detail}")
    return proc.stdout


def status(cwd: str | Path = ".") -> dict[str, Any]:
    """`dvc status` as a dict: stage -> changes; empty when every stage is up to date."""
    out = run_dvc(["status", "--json"], cwd).strip()
    try:
        return json.loads(out) if out else {}
    except json.JSONDecodeError:
        raise RecordError(f"`dvc status --json` printed something that is not JSON: {out[:200]!r}") from None


def record(cwd: str | Path = ".", push: bool = True) -> dict[str, Any]:
    """Check the pipeline is clean (the flow committed each stage to the DVC cache and dvc.lock as it ran), push to
    the remote."""
    changes = status(cwd)
    if changes:
        raise RecordError(f"`dvc status` is not clean after the run: {json.dumps(changes)[:500]}")
    pushed = run_dvc(["push"], cwd).strip().splitlines() if push else []
    return {"committed": True, "status": "clean", "pushed": pushed[-1] if pushed else "not pushed"}


def git_commit(cwd: str | Path, message: str) -> str | None:
    """Commit what a run changed in git's files (dvc.lock, params.yaml, the metrics under reports/); return the new
    commit's hash, or None when nothing changed. Files git ignores (the DVC outputs) are not touched."""

    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RecordError(
                f"`git {' '.join(args)}` failed in {Path(cwd).resolve()}: {(proc.stderr or proc.stdout).strip()[-400:]}"
            )
        return proc.stdout.strip()

    git("add", "--", "dvc.lock", "params.yaml", "reports")
    if not git("diff", "--cached", "--name-only"):
        return None
    git("-c", "user.name=vaeops", "-c", "user.email=vaeops@localhost", "commit", "-q", "-m", message)
    return git("rev-parse", "HEAD")


def set_params(path: str | Path, overrides: dict[str, Any]) -> bool:
    """Write "section.key" overrides into params.yaml, keeping its comments, as `dvc exp run -S` does.

    The file is what DVC records in dvc.lock, so a flow run with a new data source must leave it in params.yaml,
    not only in memory. Returns True if the file changed.
    """
    from ruamel.yaml import YAML  # dvc's own round-trip YAML library

    path = Path(path)
    load_params(path, overrides)  # refuse a bad value before the file is touched
    yaml = YAML()
    yaml.preserve_quotes = True  # an untouched key keeps its quotes: only the overridden values change
    yaml.representer.add_representer(type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null"))
    yaml.representer.add_representer(float, _yaml11_float)
    document = yaml.load(path.read_text(encoding="utf-8")) or {}
    changed = False
    for dotted, value in overrides.items():
        section, _, key = dotted.partition(".")
        if not key or section not in document or key not in (document[section] or {}):
            raise ParamsError(f"override {dotted!r} names no existing key of {path}")
        if document[section][key] != value:
            document[section][key] = value
            changed = True
    if changed:
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
            yaml.dump(document, handle)
    return changed


def _yaml11_float(representer: Any, value: float) -> Any:
    """Write 1e-06 as 1.0e-06: PyYAML (YAML 1.1), which reads params.yaml, takes a mantissa without a dot for a
    string."""
    mantissa, e, exponent = repr(value).partition("e")
    text = f"{mantissa if '.' in mantissa else mantissa + '.0'}{e}{exponent}"
    return representer.represent_scalar("tag:yaml.org,2002:float", text)
