"""Prepare stage: load the configured data set, split it (seeded, stratified), check it, write data/prepared/."""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from vaeops.core.errors import DataError
from vaeops.core.params import Params, load_params
from vaeops.data.sources import Source, load_source
from vaeops.dataset.splits import SPLITS, write_prepared

Arrays = tuple[np.ndarray, np.ndarray]
# The data params that decide the prepared bytes; download/urls/paths do not (checksums pin the content).
CONTENT_PARAMS = ("dataset", "val_fraction", "test_fraction", "seed")


def prepare(params: Params) -> dict[str, Any]:
    """Stage function: write the train/val/test splits and their manifest atomically; return a short summary."""
    data = params.data
    started = time.perf_counter()
    source = load_source(data)
    splits = split_source(source, data.val_fraction, data.test_fraction, data.seed)
    check_splits(splits, source.classes, source.image_shape)
    manifest = write_prepared(data.out_dir, splits, build_manifest(source, splits, params))
    return {
        "dataset": source.dataset,
        "out_dir": data.out_dir,
        "counts": {name: entry["total"] for name, entry in manifest["counts"].items()},
        "files": manifest["files"],
        "seconds": round(time.perf_counter() - started, 3),
    }


def stratified_take(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Pick round(fraction * N) indices, the same fraction from every class; returns sorted indices.

    Per-class quotas are floored, then the leftover picks go to the classes with the largest remainders
    (ties broken by class order), so the total is exact and the draw depends only on labels, fraction and rng.
    """
    classes = np.unique(labels)
    members = [np.flatnonzero(labels == c) for c in classes]
    quota = fraction * np.array([len(m) for m in members], dtype=np.float64)
    take = np.floor(quota).astype(np.int64)
    leftover = int(round(fraction * len(labels))) - int(take.sum())
    order = np.argsort(-(quota - take), kind="stable")
    take[order[:leftover]] += 1
    picked = [rng.permutation(m)[:k] for m, k in zip(members, take)]
    return np.sort(np.concatenate(picked)) if picked else np.array([], dtype=np.int64)


def split_pool(pool: Arrays, fraction: float, rng: np.random.Generator) -> tuple[Arrays, Arrays]:
    """Split a pool into (rest, taken), taking a stratified `fraction`."""
    images, labels = pool
    taken = stratified_take(labels, fraction, rng)
    rest = np.setdiff1d(np.arange(len(labels)), taken, assume_unique=True)
    return (images[rest], labels[rest]), (images[taken], labels[taken])


def split_source(source: Source, val_fraction: float, test_fraction: float, seed: int) -> dict[str, Arrays]:
    """Make train/val/test: test is the official test set when the source has one, else a stratified draw."""
    rng = np.random.default_rng(seed)
    if "test" in source.pools:
        train_pool, test = source.pools["train"], source.pools["test"]
    else:
        train_pool, test = split_pool(source.pools["all"], test_fraction, rng)
    train, val = split_pool(train_pool, val_fraction, rng)
    return {"train": train, "val": val, "test": test}


def check_splits(splits: dict[str, Arrays], classes: tuple[int, ...], image_shape: tuple[int, int]) -> None:
    """Refuse splits with NaN/inf or out-of-range pixels, wrong shapes, unknown labels or a missing class."""
    for name in SPLITS:
        images, labels = splits[name]
        if images.shape[1:] != tuple(image_shape) or labels.shape != (images.shape[0],):
            raise DataError(
                f"{name} split: expected images (N, {image_shape[0]}, {image_shape[1]}) and labels (N,), got "
                f"{images.shape} and {labels.shape}"
            )
        nan, inf = int(np.isnan(images).sum()), int(np.isinf(images).sum())
        if nan or inf:
            raise DataError(f"{name} split: {nan} NaN and {inf} infinite pixels")
        outside = int(((images < 0) | (images > 1)).sum())
        if outside:
            raise DataError(
                f"{name} split: {outside} pixels outside [0, 1] (min {images.min():.4g}, max {images.max():.4g})"
            )
        unknown = ~np.isin(labels, classes)
        if unknown.any():
            raise DataError(
                f"{name} split: {int(unknown.sum())} labels outside the class set {list(classes)}: "
                f"{sorted(set(labels[unknown].tolist()))[:5]}"
            )
        missing = sorted(set(classes) - set(labels.tolist()))
        if missing:
            raise DataError(f"{name} split: class(es) {missing} have no images")


def build_manifest(source: Source, splits: dict[str, Arrays], params: Params) -> dict[str, Any]:
    """Describe the prepared data: source, image shape, classes, per-class counts per split, the params used."""
    data = params.section_dict("data")
    counts = {}
    for name, (_, labels) in splits.items():
        per_class = np.bincount(labels, minlength=max(source.classes) + 1)
        counts[name] = {"total": int(len(labels)), "per_class": {str(c): int(per_class[c]) for c in source.classes}}
    return {
        "dataset": source.dataset,
        "source": source.provenance,
        "image_shape": list(source.image_shape),
        "classes": list(source.classes),
        "pixels": "float32 grey levels in [0, 1]",
        "counts": counts,
        "params": {key: data[key] for key in CONTENT_PARAMS},
    }


def run_cli(args: argparse.Namespace) -> None:
    """`vaeops prepare`: run the stage and print one line per split."""
    summary = prepare(load_params(args.params, args.overrides))
    counts = ", ".join(f"{name} {count}" for name, count in summary["counts"].items())
    print(f"prepared {summary['dataset']} into {summary['out_dir']}: {counts} images ({summary['seconds']:.1f} s)")
