"""Stage fingerprints for the flow's task cache: hashes of exactly what dvc.yaml says a stage reads, and of what it
wrote."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from vaeops.core.fileio import sha256_bytes, sha256_file
from vaeops.core.params import Params


@dataclass(frozen=True)
class StageSpec:
    """One resolved dvc.yaml stage (foreach/matrix expanded by DVC itself): its command, deps, params keys and outs."""

    name: str
    cmd: str
    deps: tuple[str, ...]
    params: tuple[str, ...]
    outs: tuple[str, ...]


def stage_specs(root: str | Path = ".") -> dict[str, StageSpec]:
    """Read dvc.yaml through DVC's own parser, so the flow and `dvc repro` agree on what each stage depends on."""
    from dvc.repo import (
        Repo,  # imported here: about half a second, needed only by the flow
    )

    specs = {}
    with Repo(str(root)) as repo:
        for stage in repo.index.stages:
            deps, keys = [], []
            for dep in stage.deps:
                if hasattr(dep, "params"):  # a ParamsDependency: the exact keys (or whole sections) it reads
                    keys += list(dep.params or [])
                else:
                    deps.append(dep.def_path)
            cmd = stage.cmd if isinstance(stage.cmd, str) else " && ".join(stage.cmd or [])
            specs[stage.name] = StageSpec(
                stage.name, cmd, tuple(deps), tuple(keys), tuple(o.def_path for o in stage.outs)
            )
    return specs


def path_digest(path: str | Path) -> str:
    """sha256 of a file, of a folder's (relative name, file sha256) listing, or "missing".

    Python byte-code is skipped, as .dvcignore makes DVC skip it: a package folder's digest is its sources'."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    if path.is_dir():
        listing = [
            (str(p.relative_to(path)), sha256_file(p))
            for p in sorted(path.rglob("*"))
            if p.is_file() and p.suffix != ".pyc" and "__pycache__" not in p.parts
        ]
        return sha256_bytes(json.dumps(listing).encode("utf-8"))
    return "missing"


def fingerprint(spec: StageSpec, params: Params, extra_paths: tuple[str, ...] = ()) -> str:
    """One hash of a stage's command, deps (file contents), params values and any extra inputs (e.g. a source
    folder)."""
    payload = {
        "cmd": spec.cmd,
        "deps": {dep: path_digest(dep) for dep in spec.deps},
        "params": {key: params.value(key) for key in spec.params},
        "extra": {path: path_digest(path) for path in extra_paths},
    }
    return sha256_bytes(json.dumps(payload, sort_keys=True, default=str).encode("utf-8"))


def outputs_digest(outs: tuple[str, ...]) -> dict[str, str]:
    """What a stage wrote: a digest per out, kept with the cached result to tell if outputs changed since."""
    return {out: path_digest(out) for out in outs}
