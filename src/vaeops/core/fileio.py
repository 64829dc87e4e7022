"""Atomic writes and hashing, so a failed stage never leaves a half-written artifact behind."""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vaeops.core.errors import ParamsError


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Return the hex sha256 of a file, read in chunks so large files do not load into memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_json_object(path: str | Path, what: str, error: type[Exception], missing_hint: str = "") -> dict[str, Any]:
    """Read a JSON file that must hold an object; every way it can fail raises `error` with a message naming `what`."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} not found: {path}{f' ({missing_hint})' if missing_hint else ''}")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{what} {path} is not readable JSON: {exc}") from None
    if not isinstance(value, dict):
        raise error(f"{what} {path} must hold a JSON object")
    return value


def sha256_bytes(data: bytes) -> str:
    """Return the hex sha256 of a byte string."""
    return hashlib.sha256(data).hexdigest()


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write bytes to `path` atomically (temp file, fsync, rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write UTF-8 text to `path` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, payload: Any) -> None:
    """Write `payload` as indented, key-sorted JSON atomically."""
    write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=True, allow_nan=False) + "\n")


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2 with RENAME_EXCHANGE); False where that is unsupported."""
    function = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if function is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if function(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # an old kernel or a file system without it
        return False
    raise OSError(code, os.strerror(code), str(b))


def clear_debris(target: str | Path) -> list[Path]:
    """Undo what a killed write of `target` (a file or a folder) left: put a moved-aside folder back if the target is
    gone, and remove the temporary files and folders of writes that never finished; return what was removed. Only
    the one writer of `target` may call it (stages run one at a time; champion writers hold a lock)."""
    target = Path(target)
    backup = target.with_name(f".{target.name}.old")
    if backup.exists() and not target.exists():
        os.replace(backup, target)
    removed = [stale for stale in [*target.parent.glob(f".{target.name}.*.tmp"), backup] if stale.exists()]
    for stale in removed:
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
    return removed


class ForeignFolder(ParamsError):
    """The folder an output would replace holds something the project did not write there."""


def check_own_output(target: Path, marker: str) -> None:
    """Refuse to replace a file, or a non-empty folder without `marker` (the file every earlier output of this kind
    holds): a user-given path must never lose what the user keeps there."""
    if target.exists() and not target.is_dir():
        raise ForeignFolder(f"{target} is a file, not an output folder: choose another path")
    if target.is_dir() and any(target.iterdir()) and not (target / marker).is_file():
        raise ForeignFolder(
            f"{target} holds files but no {marker}, so it is not an earlier output of this stage: refusing to replace "
            "it; choose an empty or new folder"
        )


@contextmanager
def atomic_directory(path: str | Path, marker: str | None = None) -> Iterator[Path]:
    """Yield a fresh temporary folder beside `path`; swap it in for `path` only if the block succeeds.

    The swap is one atomic exchange of the two folders where the kernel offers it (Linux), so a kill at any
    instant leaves either the old or the new contents at `path`, never a mix and never nothing; elsewhere the old
    folder is moved aside first and put back by the next write if a kill came between the two renames. Leftovers of
    an interrupted write are removed at the next one. With a `marker`, a folder that is not an earlier output (a
    file, or files without the marker) is refused with ForeignFolder before anything moves.
    """
    target = Path(path)
    if marker is not None:
        check_own_output(target, marker)
    target.parent.mkdir(parents=True, exist_ok=True)
    clear_debris(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield staging
        if target.exists() and _exchange(staging, target):
            shutil.rmtree(staging)  # now the old contents
            return
        backup = target.with_name(f".{target.name}.old")
        if target.exists():
            os.replace(target, backup)
        os.replace(staging, target)
        if backup.exists():
            shutil.rmtree(backup)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
