"""The gallery an exported model carries: a few dozen of its test images, a few of each class, for the browser page.

Written by the export stage beside the graphs (`gallery.npz`, float32 images and int64 labels), listed in the export
manifest with its sha256, copied into the champion with the graphs, and read back only when the sha256 matches.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from vaeops.core.errors import ModelFileError
from vaeops.core.fileio import sha256_bytes
from vaeops.serving.inference import read_listed_file

GALLERY_FILE = "gallery.npz"


def pick(labels: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """Indices of `count` images taking the classes in turn (seeded order within each class), sorted."""
    rng = np.random.default_rng(seed)
    queues = [list(rng.permutation(np.flatnonzero(labels == label))) for label in np.unique(labels)]
    chosen: list[int] = []
    while len(chosen) < min(count, len(labels)):
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(int(queue.pop(0)))
    return np.sort(np.array(chosen, dtype=np.int64))


def encode(images: np.ndarray, labels: np.ndarray, indices: np.ndarray) -> tuple[bytes, dict[str, Any]]:
    """The gallery file's bytes (deterministic: same images, same bytes) and its manifest entry."""
    buffer = io.BytesIO()
    np.savez(buffer, images=images[indices].astype(np.float32), labels=labels[indices].astype(np.int64),
             indices=indices)
    data = buffer.getvalue()
    entry = {"file": GALLERY_FILE, "sha256": sha256_bytes(data), "bytes": len(data), "images": int(len(indices)),
             "split": "test"}
    return data, entry


def read_bytes(model_dir: str | Path, manifest: dict[str, Any]) -> bytes | None:
    """The gallery file's bytes when the manifest lists one (None for exports without a gallery), sha256-checked."""
    entry = manifest.get("gallery")
    if entry is None:
        return None
    if not isinstance(entry, dict) or entry.get("file") != GALLERY_FILE:
        raise ModelFileError(f"the export manifest in {model_dir} has a malformed 'gallery' entry")
    return read_listed_file(model_dir, entry, "gallery")


def load(model_dir: str | Path, manifest: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """The gallery's images (N, H, W) and labels, or None when the export has none."""
    data = read_bytes(model_dir, manifest)
    if data is None:
        return None
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        return arrays["images"], arrays["labels"]
