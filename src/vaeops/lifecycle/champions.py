"""`vaeops champion list|rollback|pin|unpin`: the champion history's commands.

Rollback installs a kept copy (`history`) as the champion in one atomic swap, so it works without a git checkout,
and `vaeops serve` follows it like any new champion. A pinned champion is not replaced by the gate. Each command is
the only writer while it runs and first repairs what an interrupted one left (`writer`).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

from vaeops.bundle.install import INSTALL_RECORD, InstallRecord, read_installed
from vaeops.bundle.manifest import MANIFEST, Manifest
from vaeops.core.artifacts import write_artifact
from vaeops.core.errors import DataError, ParamsError
from vaeops.core.fileio import atomic_directory
from vaeops.core.params import Params, load_params
from vaeops.lifecycle.history import (
    PIN,
    Pin,
    current_manifest,
    current_version,
    event,
    kept,
    load_history,
    pinned,
    write_event,
)
from vaeops.lifecycle.writer import locked


def verified(folder: Path) -> Manifest:
    """A model folder's manifest, after every file its manifest and install record list matched its sha256."""
    return read_installed(folder)[0]


@locked
def rollback(params: Params, version: str | None = None) -> dict[str, Any]:
    """Install a kept champion (default: the one promoted before the current one) as the champion."""
    champion_dir, history_dir = Path(params.promote.champion_dir), Path(params.promote.history_dir)
    served, versions = current_manifest(champion_dir), kept(history_dir)
    current = served.model_version if served is not None else None
    if version is None:
        earlier = versions[: versions.index(current)] if current in versions else versions
        if not earlier:
            raise DataError(
                f"no earlier champion is kept in {history_dir}/ to roll back to (kept: {versions or 'none'})"
            )
        version = earlier[-1]
    if version not in versions:
        raise DataError(f"champion {version!r} is not kept in {history_dir}/; kept: {', '.join(versions) or 'none'}")
    pin_version = pinned(history_dir)
    if pin_version not in (None, version):
        raise ParamsError(f"champion {pin_version} is pinned: `vaeops champion unpin` before rolling back")
    target = verified(history_dir / version)  # a kept copy that no longer matches its manifest is refused
    # A rollback is the operator's explicit decision, so a change of input contract it makes is accepted and recorded.
    record = InstallRecord.make("rollback", target, served, accepted=True)
    with atomic_directory(champion_dir, marker=MANIFEST) as staging:
        shutil.copytree(history_dir / version, staging, dirs_exist_ok=True)
        write_artifact(staging / INSTALL_RECORD, record.listing(staging))
    manifest = verified(champion_dir)
    write_event(history_dir, event("rollback", manifest, previous=current, contract_change=record.contract_change))
    return {"champion": version, "previous": current}


@locked
def pin(params: Params, version: str | None) -> dict[str, Any]:
    """Pin the current champion (it must be `version`) so the gate keeps it, or unpin with version None."""
    champion_dir, history_dir = Path(params.promote.champion_dir), Path(params.promote.history_dir)
    current = current_version(champion_dir)
    if version is not None and version != current:
        raise ParamsError(
            f"only the current champion can be pinned: it is {current}, not {version!r} "
            "(`vaeops champion rollback VERSION` first)"
        )
    if current is None:
        raise DataError(f"there is no champion in {champion_dir}/ to pin or unpin")
    write_artifact(history_dir / PIN, Pin(pinned=version))
    write_event(history_dir, event("pin" if version else "unpin", verified(champion_dir)))
    return {"pinned": version}


@locked
def unpin(params: Params, version: str | None = None) -> dict[str, Any]:
    """Unpin the pinned champion; with nothing pinned, or naming a version that is not the pinned one, refuse."""
    pinned_now = pinned(Path(params.promote.history_dir))
    if pinned_now is None or version not in (None, pinned_now):
        raise ParamsError(f"champion {version or ''} is not pinned (pinned: {pinned_now or 'none'}); nothing to unpin")
    return pin(params, None)


def table(params: Params) -> str:
    """`vaeops champion list`: one line per event, the current and pinned champion marked."""
    history_dir = Path(params.promote.history_dir)
    history, current = load_history(history_dir), current_version(Path(params.promote.champion_dir))
    lines = [f"{'when':20s} {'event':8s} {'version':22s} {'data':12s} {'NLL':>9s}  contract"]
    for e in history.events:
        nll = f"{e.nll:.3f}" if e.nll is not None else "-"
        mark = " (current)" if e.model_version == current and e is history.events[-1] else ""
        mark += " (recovered)" if e.recovered else ""
        lines.append(
            f"{e.at:20s} {e.event:8s} {e.model_version:22s} {str(e.data_sha256)[:12]:12s} "
            f"{nll:>9s}  {e.contract.image_shape} {e.contract.likelihood}{mark}"
        )
    lines.append(
        f"champion: {current or 'none'}; pinned: {pinned(history_dir) or 'none'}; kept for rollback: "
        f"{', '.join(kept(history_dir)) or 'none'}"
    )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`vaeops champion list | rollback [VERSION] | pin VERSION | unpin`."""
    parser.add_argument("action", choices=("list", "rollback", "pin", "unpin"))
    parser.add_argument("version", nargs="?", help="model version (rollback: default the previous champion)")


def run_cli(args: argparse.Namespace) -> None:
    """Run one champion command and say what it did."""
    params = load_params(args.params, args.overrides)
    if args.action == "list":
        print(table(params))
    elif args.action == "rollback":
        done = rollback(params, args.version)
        print(
            f"champion: {done['champion']} (was {done['previous']}); `vaeops serve` follows it, and the next flow "
            "run records it with DVC (or `dvc commit -f promote`)"
        )
    elif args.action == "pin":
        if not args.version:
            raise ParamsError("pin needs the VERSION of the current champion (see `vaeops champion list`)")
        print(f"pinned: {pin(params, args.version)['pinned']}; the gate keeps it until `vaeops champion unpin`")
    else:
        unpin(params, args.version)
        print("unpinned: the gate may replace the champion again")
