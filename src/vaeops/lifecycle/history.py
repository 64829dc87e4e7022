"""The champion history's files: `history.json` (every promotion, rollback, pin and unpin) and `pin.json`.

Each champion the gate installs is also copied to `promote.history_dir/<model_version>/` (the last
`promote.keep_champions`, never the current or the pinned one dropped), so a rollback needs no git checkout.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any, Literal

from vaeops.bundle.install import Contract
from vaeops.bundle.manifest import MANIFEST, Manifest, read_manifest
from vaeops.core.artifacts import Artifact, read_artifact, write_artifact
from vaeops.core.errors import DataError
from vaeops.core.fileio import atomic_directory

HISTORY = "history.json"
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
    recovered: bool = False  # written by the next writer, from what an interrupted one left on disk


class History(Artifact):
    """`history.json`: every promotion, rollback, pin and unpin, oldest first."""

    events: list[Event]  # required: a file that lost it is damaged, not an empty history

    def installed(self) -> str | None:
        """The version the last promotion or rollback installed: what champion/ should hold."""
        installs = [e.model_version for e in self.events if e.event in ("promote", "rollback")]
        return installs[-1] if installs else None

    def pinned(self) -> str | None:
        """The version the last pin or unpin left pinned: what pin.json should say."""
        pins = [e for e in self.events if e.event in ("pin", "unpin")]
        return pins[-1].model_version if pins and pins[-1].event == "pin" else None


class Pin(Artifact):
    """`pin.json`: the champion the gate must keep, or None."""

    pinned: str | None


def load_history(history_dir: Path) -> History:
    """The events; an empty history when none was written yet."""
    if not (history_dir / HISTORY).is_file():
        return History(events=[])
    return read_artifact(history_dir / HISTORY, History, "champion history", DataError)


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


def archive(champion_dir: Path, history_dir: Path, keep: int, reasons: list[str], recovered: bool = False) -> None:
    """Keep a copy of the champion just installed, record its promotion, and drop the oldest copies beyond `keep`."""
    manifest = read_manifest(champion_dir)
    with atomic_directory(history_dir / manifest.model_version) as staging:
        shutil.copytree(champion_dir, staging, dirs_exist_ok=True)
    write_event(history_dir, event("promote", manifest, reasons=reasons, recovered=recovered))
    history = load_history(history_dir)
    promoted = [e.model_version for e in history.events if e.event == "promote"]
    keep_versions = set(promoted[-keep:]) | {pinned(history_dir), manifest.model_version}
    for folder in history_dir.iterdir():
        if folder.is_dir() and not folder.name.startswith(".") and folder.name not in keep_versions:
            shutil.rmtree(folder)


def kept(history_dir: Path) -> list[str]:
    """Versions with a copy on disk, in promotion order."""
    order = [e.model_version for e in load_history(history_dir).events if e.event == "promote"]
    return [v for v in dict.fromkeys(order) if (history_dir / v / MANIFEST).is_file()]


def current_manifest(champion_dir: Path) -> Manifest | None:
    """The champion folder's manifest, or None when there is no champion."""
    if not (champion_dir / MANIFEST).is_file():
        return None
    return read_manifest(champion_dir)


def current_version(champion_dir: Path) -> str | None:
    """The version in the champion folder, or None when there is no champion."""
    manifest = current_manifest(champion_dir)
    return manifest.model_version if manifest is not None else None
