"""Champion history: every promoted model kept beside the champion, `vaeops champion list|rollback|pin|unpin`.

Each champion the gate installs is also copied to `promote.history_dir/<model_version>/` (the last
`promote.keep_champions`, never the current or the pinned one dropped), and every promotion, rollback, pin and unpin
is an event in `history.json` there. Rollback installs a kept copy as the champion in one atomic swap, so it works
without a git checkout, and `vaeops serve` follows it like any new champion. A pinned champion is not replaced by
the gate.
"""

from __future__ import annotations

import argparse
import functools
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

from filelock import FileLock, Timeout

from vaeops.bundle.install import INSTALL_RECORD, Contract, InstallRecord
from vaeops.bundle.manifest import MANIFEST, Manifest, read_manifest, read_verified
from vaeops.core.artifacts import Artifact, read_artifact, write_artifact
from vaeops.core.errors import DataError, ParamsError, VaeopsError
from vaeops.core.fileio import atomic_directory
from vaeops.core.params import Params, load_params

HISTORY = "history.json"
R = TypeVar("R")
LOCK = ".writer.lock"  # held by promote, rollback, pin and unpin: one writer of the champion at a time
_LOCKS: dict[Path, FileLock] = {}  # one lock object per file, so a holder may take it again (pin inside unpin)


class ChampionBusy(VaeopsError):
    """Another promotion, rollback, pin or unpin is changing the champion right now."""


@contextmanager
def writer_lock(history_dir: Path) -> Iterator[None]:
    """Be the only writer of the champion, its history and the decision; refuse at once, naming the lock, when
    another process is (filelock: an OS lock, released by the OS if its holder dies)."""
    history_dir.mkdir(parents=True, exist_ok=True)
    path = (history_dir / LOCK).resolve()
    lock = _LOCKS.setdefault(path, FileLock(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ChampionBusy(f"another promotion, rollback, pin or unpin holds {path}; try again when it ends") from None
    try:
        yield
    finally:
        lock.release()


PIN = "pin.json"  # apart from the history: the flow's cache key for the gate includes it, not every event


class Event(Artifact):
    """One entry of the history: what happened to which model, when, on which data, with which input contract."""

    event: Literal["promote", "rollback", "pin", "unpin"]
    model_version: str
    at: str
    data_sha256: str | None
    nll: float | None
    dataset: str | None
    contract: Contract
    reasons: list[str] = []
    previous: str | None = None
    contract_change: str | None = None


class History(Artifact):
    """`history.json`: every promotion, rollback, pin and unpin, oldest first."""

    events: list[Event] = []


class Pin(Artifact):
    """`pin.json`: the champion the gate must keep, or None."""

    pinned: str | None


def load_history(history_dir: Path) -> History:
    """The events; an empty history when none was written yet."""
    if not (history_dir / HISTORY).is_file():
        return History()
    return read_artifact(history_dir / HISTORY, History, "champion history", DataError)


def locked(command: Callable[..., R]) -> Callable[..., R]:
    """Run a command that changes the champion (its first argument the params) as the only writer."""

    @functools.wraps(command)
    def run(params: Params, *args: Any, **kwargs: Any) -> R:
        with writer_lock(Path(params.promote.history_dir)):
            return command(params, *args, **kwargs)

    return run


def pinned(history_dir: Path) -> str | None:
    """The pinned champion's version, or None."""
    if not (history_dir / PIN).is_file():
        return None
    return read_artifact(history_dir / PIN, Pin, "champion pin", DataError).pinned


def event(kind: str, manifest: Manifest, **details: Any) -> Event:
    """One history entry: what happened to which model, when, on which data, with which input contract."""
    nll, dataset = manifest.metrics.get("nll"), manifest.metrics.get("dataset")
    return Event(
        event=kind,
        model_version=manifest.model_version,
        data_sha256=manifest.data_sha256,
        at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        nll=nll,
        dataset=dataset,
        contract=Contract.of(manifest),
        **details,
    )


def write_event(history_dir: Path, entry: Event) -> None:
    """Append an event to the history in one atomic write."""
    history = load_history(history_dir)
    write_artifact(history_dir / HISTORY, History(events=[*history.events, entry]))


def archive(champion_dir: Path, history_dir: Path, keep: int, reasons: list[str]) -> None:
    """Keep a copy of the champion just installed, record its promotion, and drop the oldest copies beyond `keep`."""
    manifest = read_manifest(champion_dir)
    with atomic_directory(history_dir / manifest.model_version) as staging:
        shutil.copytree(champion_dir, staging, dirs_exist_ok=True)
    write_event(history_dir, event("promote", manifest, reasons=reasons))
    history = load_history(history_dir)
    promoted = [e.model_version for e in history.events if e.event == "promote"]
    keep_versions = set(promoted[-keep:]) | {pinned(history_dir), manifest.model_version}
    for folder in history_dir.iterdir():
        if folder.is_dir() and not folder.name.startswith(".") and folder.name not in keep_versions:
            shutil.rmtree(folder)


def kept(history_dir: Path) -> list[str]:
    """Versions with a copy on disk, in promotion order."""
    order = [e.model_version for e in load_history(history_dir).events if e.event == "promote"]
    present = [v for v in dict.fromkeys(order) if (history_dir / v / MANIFEST).is_file()]
    return present


def verified(folder: Path) -> Manifest:
    """A model folder's manifest, after every file it lists matched its sha256."""
    return read_verified(folder)[0]


def current_version(champion_dir: Path) -> str | None:
    """The version in the champion folder, or None when there is no champion."""
    manifest = current_manifest(champion_dir)
    return manifest.model_version if manifest is not None else None


def current_manifest(champion_dir: Path) -> Manifest | None:
    """The champion folder's manifest, or None when there is no champion."""
    if not (champion_dir / MANIFEST).is_file():
        return None
    return read_manifest(champion_dir)


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
    with atomic_directory(champion_dir) as staging:
        shutil.copytree(history_dir / version, staging, dirs_exist_ok=True)
        write_artifact(staging / INSTALL_RECORD, record)
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
