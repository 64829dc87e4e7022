"""The gallery a bundle carries: a few dozen of its test images, a few of each class, for the browser page.

Written by the export stage beside the graphs (`gallery.npz`, float32 images and int64 labels), listed in the
manifest with its sha256, copied into the champion with the graphs, and read back only when the sha256 matches.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from vaeops.bundle.manifest import GalleryEntry, Manifest, file_entry, read_listed_file

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


def encode(images: np.ndarray, labels: np.ndarray, indices: np.ndarray) -> tuple[bytes, GalleryEntry]:
    """The gallery file's bytes (deterministic: same images, same bytes) and its manifest entry."""
    buffer = io.BytesIO()
    np.savez(
        buffer, images=images[indices].astype(np.float32), labels=labels[indices].astype(np.int64), indices=indices
    )
    data = buffer.getvalue()
    return data, GalleryEntry(**file_entry(GALLERY_FILE, data, images=int(len(indices)), split="test"))


def load(bundle_dir: str | Path, manifest: Manifest) -> tuple[np.ndarray, np.ndarray] | None:
    """The gallery's images (N, H, W) and labels, sha256-checked; None when the bundle has none."""
    if manifest.gallery is None:
        return None
    data = read_listed_file(bundle_dir, manifest.gallery, "gallery")
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        return arrays["images"], arrays["labels"]
