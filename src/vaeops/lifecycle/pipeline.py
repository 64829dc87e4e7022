"""dvc.yaml as the flow sees it, through DVC's own API: each stage's spec, whether it is stale, and recording it.

DVC already knows whether a stage must run: `dvc status` compares its command, deps, params and outs with what
`dvc.lock` recorded, with DVC's own hashing (and its state database, which does not re-hash unchanged files). The
flow asks DVC instead of hashing folders itself, and records each stage in `dvc.lock` as soon as it has run, so the
lock always describes the workspace. What dvc.yaml cannot declare (a data feed's files outside the repo, the
champion's data profile, the champion pin) is hashed here, for the flow's task cache key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vaeops.core.fileio import sha256_bytes, sha256_file


@dataclass(frozen=True)
class StageSpec:
    """One resolved dvc.yaml stage (foreach/matrix expanded by DVC itself): its command, deps, params keys and outs."""

    name: str
    cmd: str
    deps: tuple[str, ...]
    params: tuple[str, ...]
    outs: tuple[str, ...]


def _spec(stage: Any) -> StageSpec:
    deps, keys = [], []
    for dep in stage.deps:
        if hasattr(dep, "params"):  # a ParamsDependency: the exact keys (or whole sections) it reads
            keys += list(dep.params or [])
        else:
            deps.append(dep.def_path)
    cmd = stage.cmd if isinstance(stage.cmd, str) else " && ".join(stage.cmd or [])
    return StageSpec(stage.name, cmd, tuple(deps), tuple(keys), tuple(o.def_path for o in stage.outs))


class DvcPipeline:
    """The repository's dvc.yaml, open for one flow run (DVC re-reads dvc.yaml and dvc.lock after each operation)."""

    def __init__(self, root: str | Path = "."):
        from dvc.repo import Repo  # imported here: about half a second, needed only by the flow

        self.repo = Repo(str(root))
        self.specs = {stage.name: _spec(stage) for stage in self.repo.index.stages}
        self.dvc_yaml = str(Path(root).resolve() / "dvc.yaml")

    def stale(self, name: str) -> list[str]:
        """What DVC finds changed for one stage since dvc.lock (its command, deps, params, outs); [] = up to date."""
        # One target, without its upstream stages: every entry is this stage's.
        found = self.repo.status(targets=[self._target(name)])
        changes = [change for entries in found.values() for change in entries]
        return [json.dumps(change, sort_keys=True) if not isinstance(change, str) else change for change in changes]

    def record(self, name: str) -> None:
        """Record one stage that has just run in dvc.lock (`dvc commit STAGE`), so the lock describes the workspace."""
        self.repo.commit(self._target(name), force=True)

    def close(self) -> None:
        """Release DVC's repository (its state database)."""
        self.repo.close()

    def _target(self, name: str) -> str:
        """The stage as a DVC target that does not depend on the working folder."""
        return f"{self.dvc_yaml}:{name}"


def stage_specs(root: str | Path = ".") -> dict[str, StageSpec]:
    """Every stage of dvc.yaml, in order, read through DVC's own parser."""
    pipeline = DvcPipeline(root)
    pipeline.close()
    return pipeline.specs


def path_digest(path: str | Path) -> str:
    """sha256 of a file, of a folder's (relative name, file sha256) listing, or "missing": for the inputs dvc.yaml
    cannot declare (a feed outside the repo, the champion's profile, the pin)."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    if path.is_dir():
        listing = [(str(p.relative_to(path)), sha256_file(p)) for p in sorted(path.rglob("*")) if p.is_file()]
        return sha256_bytes(json.dumps(listing).encode("utf-8"))
    return "missing"


def extras_digest(paths: tuple[str, ...]) -> str:
    """One hash of the undeclared inputs of a stage (empty when it has none)."""
    return sha256_bytes(json.dumps({path: path_digest(path) for path in paths}, sort_keys=True).encode("utf-8"))
