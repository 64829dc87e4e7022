"""On-disk format of prepared data: one .npz per split (float32 images in [0, 1], int64 labels) and a manifest."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from vaeops.core.errors import DataError
from vaeops.core.fileio import atomic_directory, read_json_object, sha256_file

SPLITS = ("train", "val", "test")
MANIFEST = "manifest.json"


def write_prepared(
    out_dir: str | Path, splits: dict[str, tuple[np.ndarray, np.ndarray]], manifest: dict[str, Any]
) -> dict[str, Any]:
    """Write every split and the manifest into `out_dir` as one atomic swap; return the manifest as written.

    The manifest gains the sha256 of each split file, so downstream stages can tell exactly which data they saw.
    """
    with atomic_directory(out_dir, marker="manifest.json") as staging:
        files = {}
        for name, (images, labels) in splits.items():
            buffer = io.BytesIO()
            np.savez(buffer, images=images.astype(np.float32, copy=False), labels=labels.astype(np.int64, copy=False))
            (staging / f"{name}.npz").write_bytes(buffer.getvalue())
            files[f"{name}.npz"] = sha256_file(staging / f"{name}.npz")
        manifest = {**manifest, "files": files}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


def load_split(prepared_dir: str | Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Load one prepared split as (images float32 (N, H, W), labels int64 (N,))."""
    path = Path(prepared_dir) / f"{name}.npz"
    if not path.exists():
        raise DataError(f"prepared split not found: {path} (run `vaeops prepare` first)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            images, labels = archive["images"], archive["labels"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        # a truncated or corrupt .npz raises any of these, depending on where the damage is
        raise DataError(
            f"{path} is not a readable prepared split ({type(exc).__name__}: {exc}); re-run "
            "`vaeops prepare` or `dvc pull` to restore it"
        ) from None
    if images.ndim != 3 or labels.shape != (images.shape[0],):
        raise DataError(f"{path}: expected images (N, H, W) and labels (N,), got {images.shape} and {labels.shape}")
    return images, labels


def load_manifest(prepared_dir: str | Path) -> dict[str, Any]:
    """Read the manifest written beside the prepared splits."""
    return read_json_object(Path(prepared_dir) / MANIFEST, "data manifest", DataError, "run `vaeops prepare` first")


def manifest_sha256(prepared_dir: str | Path) -> str:
    """The data version: sha256 of the manifest, which itself holds the sha256 of every split file."""
    path = Path(prepared_dir) / MANIFEST
    if not path.exists():
        raise DataError(f"data manifest not found: {path} (run `vaeops prepare` first)")
    return sha256_file(path)
