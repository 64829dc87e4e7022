"""Per-image and per-class statistics of a split: the small frames the Great Expectations gate validates."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vaeops.core.errors import ParamsError
from vaeops.core.params import ValidateParams
from vaeops.dataset.profile import image_features

IMAGE_COLUMNS = ("label", "min", "max", "mean", "ink_fraction", "pixel_count", "nonfinite", "hash", "leaked")
CLASS_COLUMNS = ("class", "count", "share")


@dataclass(frozen=True)
class Bounds:
    """The resolved bounds of the gate for one data set (params, with nulls replaced by the data set's defaults)."""

    min_rows: int
    class_share_min: float
    class_share_max: float
    ink_threshold: float
    ink_fraction_min: float
    ink_fraction_max: float
    max_leaked_images: int


# Defaults per data set, for ink_threshold 0.5. Observed ink fractions: digits 0.16..0.42 per image,
# MNIST 0.019..0.40; class shares 8.9%..11.2% in both. Fashion-MNIST has no local copy to calibrate on,
# so its ink bounds only reject blank or saturated images; its classes are exactly balanced (10% each).
DEFAULTS: dict[str, dict[str, float]] = {
    "digits": {
        "min_rows": 50,
        "class_share_min": 0.05,
        "class_share_max": 0.15,
        "ink_fraction_min": 0.05,
        "ink_fraction_max": 0.8,
    },
    "mnist": {
        "min_rows": 1000,
        "class_share_min": 0.05,
        "class_share_max": 0.15,
        "ink_fraction_min": 0.01,
        "ink_fraction_max": 0.6,
    },
    "fashion-mnist": {
        "min_rows": 1000,
        "class_share_min": 0.05,
        "class_share_max": 0.15,
        "ink_fraction_min": 0.001,
        "ink_fraction_max": 0.999,
    },
}


def resolve_bounds(params: ValidateParams, dataset: str) -> Bounds:
    """Fill every null bound in the validate params with the data set's default."""
    defaults = DEFAULTS[dataset]

    def pick(name: str) -> float:
        value = getattr(params, name)
        return defaults[name] if value is None else value

    for low, high in (("class_share_min", "class_share_max"), ("ink_fraction_min", "ink_fraction_max")):
        if pick(low) > pick(high):
            raise ParamsError(
                f"validate.{low} = {pick(low)} is above validate.{high} = {pick(high)} (null means the "
                f"{dataset} default)"
            )
    return Bounds(
        min_rows=int(pick("min_rows")),
        class_share_min=float(pick("class_share_min")),
        class_share_max=float(pick("class_share_max")),
        ink_threshold=params.ink_threshold,
        ink_fraction_min=float(pick("ink_fraction_min")),
        ink_fraction_max=float(pick("ink_fraction_max")),
        max_leaked_images=params.max_leaked_images,
    )


def image_hashes(images: np.ndarray) -> list[str]:
    """sha256 of each image's float32 bytes: equal pixels, equal hash (the leakage key)."""
    flat = np.ascontiguousarray(images, dtype=np.float32).reshape(len(images), -1)
    return [hashlib.sha256(row.tobytes()).hexdigest() for row in flat]


def image_frame(images: np.ndarray, labels: np.ndarray, ink_threshold: float) -> pd.DataFrame:
    """One row per image: label, pixel min/max/mean over finite pixels, ink fraction, pixel count, non-finite count,
    hash."""
    flat = images.reshape(len(images), -1).astype(np.float64)
    finite = np.isfinite(flat)
    n_finite = finite.sum(axis=1)
    # fmin/fmax skip NaN; +-inf are masked to NaN first so the range reflects the finite pixels only.
    clean = np.where(finite, flat, np.nan)
    features = image_features(images, ink_threshold)
    return pd.DataFrame(
        {
            "label": labels.astype(np.int64),
            "min": np.fmin.reduce(clean, axis=1),
            "max": np.fmax.reduce(clean, axis=1),
            "mean": features["mean"],
            "ink_fraction": features["ink_fraction"],
            "pixel_count": np.full(len(images), flat.shape[1], dtype=np.int64),
            "nonfinite": flat.shape[1] - n_finite,
            "hash": image_hashes(images),
        }
    )


def mark_leaks(frames: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Add `leaked` (1 when the image's hash also occurs in another split) to every split's frame."""
    owners: dict[str, set[str]] = {}
    for name, frame in frames.items():
        for digest in set(frame["hash"]):
            owners.setdefault(digest, set()).add(name)
    return {
        name: frame.assign(leaked=[int(len(owners[h]) > 1) for h in frame["hash"]]) for name, frame in frames.items()
    }


def class_frame(labels: np.ndarray, classes: tuple[int, ...]) -> pd.DataFrame:
    """One row per expected class: its image count and share of the split (a missing class has count 0)."""
    counts = np.array([int((labels == c).sum()) for c in classes], dtype=np.int64)
    share = counts / max(len(labels), 1)
    return pd.DataFrame({"class": np.array(classes, dtype=np.int64), "count": counts, "share": share})
