"""`vaeops verify`: every versioned artifact checked against the sha256 it was recorded with, as after `dvc checkout`.

DVC does not re-hash a cache object when it checks it out, so a corrupt cache writes corrupt bytes and exits 0. The
stages check what they read at the moment they read it; this command checks everything at once: the prepared
splits against the data manifest, the export and the champion against their manifest and install record, and each
kept champion in the history.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vaeops.bundle.install import read_installed
from vaeops.bundle.manifest import MANIFEST
from vaeops.core.errors import DataError, VaeopsError
from vaeops.core.fileio import sha256_file
from vaeops.core.params import Params, load_params
from vaeops.dataset.splits import load_manifest


def check_prepared(prepared_dir: Path) -> str:
    """Every split file the data manifest lists matches its sha256; a summary, else DataError naming the file."""
    listed = load_manifest(prepared_dir).get("files")
    if not isinstance(listed, dict) or not listed:
        raise DataError(f"{prepared_dir / 'manifest.json'} lists no split files with their sha256")
    for name, expected in listed.items():
        path = prepared_dir / Path(name).name
        found = sha256_file(path) if path.is_file() else "missing"
        if found != expected:
            raise DataError(
                f"{path} does not match the data manifest (sha256 {found[:12]}, expected {str(expected)[:12]}): "
                "restore it (`dvc checkout` from a good cache, `dvc pull`, or `vaeops prepare`)"
            )
    return f"{len(listed)} split files"


def check_bundle(folder: Path) -> str:
    """Every file of an export or champion folder matches its manifest and install record."""
    manifest, files = read_installed(folder)
    return f"{manifest.model_version}, {len(files)} files"


def verify(params: Params) -> list[tuple[str, bool, str]]:
    """(what, ok, detail) for each versioned artifact present; absent ones are not errors (nothing to restore)."""
    history = Path(params.promote.history_dir)
    targets = [("prepared data", Path(params.data.out_dir), check_prepared)]
    targets += [("export", Path(params.export.out_dir), check_bundle)]
    targets += [("champion", Path(params.promote.champion_dir), check_bundle)]
    if history.is_dir():
        kept = sorted(f for f in history.iterdir() if f.is_dir() and not f.name.startswith("."))
        targets += [(f"kept champion {folder.name}", folder, check_bundle) for folder in kept]
    results = []
    for what, folder, check in targets:
        if not (folder / MANIFEST).is_file():
            continue
        try:
            results.append((what, True, check(folder)))
        except VaeopsError as exc:
            results.append((what, False, str(exc)))
    return results


def run_cli(args: argparse.Namespace) -> None:
    """Print one line per artifact; exit 2 when any fails its check."""
    results = verify(load_params(args.params, args.overrides))
    for what, ok, detail in results:
        print(f"{'ok    ' if ok else 'FAILED'} {what}: {detail}")
    failed = [what for what, ok, _ in results if not ok]
    if failed:
        raise DataError(f"{len(failed)} artifact(s) failed their sha256 check: {', '.join(failed)}")
