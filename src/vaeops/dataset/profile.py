"""A split's data profile: image shape, class shares and a seeded sample of per-image features.

The champion keeps the profile of its training data (`data_profile.json` in the bundle); the drift check profiles
new data the same way and compares the two. The per-image features are also columns of the validation gate's frame.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vaeops.core.artifacts import Artifact

FEATURES = ("mean", "ink_fraction")


class DataProfile(Artifact):
    """`data_profile.json` in a champion bundle: what the drift check compares new training data with."""

    image_shape: list[int]
    images: int
    class_shares: dict[str, float]
    mean: list[float]
    ink_fraction: list[float]


def image_features(images: np.ndarray, ink_threshold: float) -> dict[str, np.ndarray]:
    """Per image: the mean over its finite pixels, and the fraction of pixels above `ink_threshold`."""
    flat = images.reshape(len(images), -1).astype(np.float64)
    finite = np.isfinite(flat)
    clean = np.where(finite, flat, 0.0)
    return {
        "mean": clean.sum(axis=1) / np.maximum(finite.sum(axis=1), 1),
        "ink_fraction": (clean > ink_threshold).mean(axis=1),
    }


def profile(images: np.ndarray, labels: np.ndarray, ink_threshold: float, sample: int, seed: int = 0) -> dict[str, Any]:
    """Image shape, class shares and a seeded sample of each per-image feature of one split."""
    features = image_features(images, ink_threshold)
    rows = np.sort(np.random.default_rng(seed).permutation(len(images))[:sample])
    classes, counts = np.unique(labels, return_counts=True)
    return {
        "image_shape": list(images.shape[1:]),
        "images": int(len(images)),
        "class_shares": {str(int(c)): float(n / len(labels)) for c, n in zip(classes, counts)},
        **{name: [round(float(v), 6) for v in features[name][rows]] for name in FEATURES},
    }
