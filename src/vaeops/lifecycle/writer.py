"""One writer of the champion at a time, and the clean-up of what an interrupted writer left.

promote, rollback, pin and unpin hold an OS file lock (filelock) while they change `champion/`, the history and
the decision, and first put right what a killed writer left on disk: its temporary files are removed, and a swap
or a pin that happened but was never recorded in the history is recorded then, marked `recovered`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from filelock import FileLock, Timeout

from vaeops.bundle.install import read_install_record, read_installed
from vaeops.core.errors import VaeopsError
from vaeops.core.fileio import clear_debris
from vaeops.core.params import Params
from vaeops.lifecycle import history

R = TypeVar("R")
LOCK = ".writer.lock"  # in the history folder
_LOCKS: dict[Path, FileLock] = {}  # one lock object per file, so a holder may take it again (pin inside unpin)
log = logging.getLogger(__name__)


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


def recover(params: Params) -> list[str]:
    """Put right what a killed promote, rollback, pin or unpin left; return one line per repair (none when clean)."""
    cfg = params.promote
    champion_dir, history_dir = Path(cfg.champion_dir), Path(cfg.history_dir)
    debris = [*clear_debris(champion_dir), *clear_debris(Path(cfg.decision))]
    # A temporary name is ".<target>.<random>.tmp": the history, the pin or a kept copy being written.
    for target in sorted({stale.name[1:].rsplit(".", 2)[0] for stale in history_dir.glob(".*.tmp")}):
        debris += clear_debris(history_dir / target)
    repairs = [f"removed {path}, left by an interrupted write" for path in debris]
    try:
        champion = read_installed(champion_dir)[0] if history.current_manifest(champion_dir) else None
    except VaeopsError:
        champion = None  # a damaged champion is the command's to refuse, with its own message; nothing to record
    if champion is None:
        return repairs
    recorded = history.load_history(history_dir)
    if recorded.installed() != champion.model_version:
        install = read_install_record(champion_dir)
        if install is not None and install.installed_by == "rollback":
            entry = history.event("rollback", champion, previous=install.previous_version, recovered=True)
            history.write_event(history_dir, entry)
        else:  # a promotion swapped in but killed before its history entry (or a champion checked out by DVC)
            reason = f"{champion_dir}/ held this model without a history entry: recorded by the next writer"
            history.archive(champion_dir, history_dir, cfg.keep_champions, [reason], recovered=True)
        repairs.append(f"recorded {champion.model_version}, installed by an interrupted command, in the history")
    pin_now = history.pinned(history_dir)
    if history.load_history(history_dir).pinned() != pin_now:
        entry = history.event("pin" if pin_now else "unpin", champion, recovered=True)
        history.write_event(history_dir, entry)
        repairs.append(f"recorded the {'pin' if pin_now else 'unpin'} of an interrupted command in the history")
    return repairs


def locked(command: Callable[..., R]) -> Callable[..., R]:
    """Run a command that changes the champion (its first argument the params) as the only writer, after putting
    right what an interrupted writer left."""

    @functools.wraps(command)
    def run(params: Params, *args: Any, **kwargs: Any) -> R:
        with writer_lock(Path(params.promote.history_dir)):
            for repair in recover(params):
                log.warning("champion: %s", repair)
            return command(params, *args, **kwargs)

    return run
