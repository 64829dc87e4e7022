"""Checks of inference inputs shared by the library and the HTTP service: numeric arrays, finiteness, batch limits."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from vaeops.core.errors import BatchTooLarge, InputError

LATENT_BOUND = 1e3  # |z| beyond a few units means nothing under N(0, I); far beyond, float32 layers overflow to NaN


def holds_bool(value: Any) -> bool:
    """Whether nested lists hold a JSON true or false, which numpy would silently turn into 1.0 or 0.0."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            if item and isinstance(item[0], list):
                stack.extend(item)
            elif any(entry.__class__ is bool for entry in item):
                return True
    return False


def as_array(value: Any, what: str) -> np.ndarray:
    """Turn nested lists or an array into a numeric array, refusing what cannot be converted without guessing."""
    if holds_bool(value):
        raise InputError(f"{what} must hold numbers, not true or false")
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise InputError(
            f"{what} must be a rectangular array of numbers (nested lists of equal length): {exc}"
        ) from None
    if array.dtype.kind not in "biuf":
        raise InputError(
            f"{what} must hold real numbers, got dtype {array.dtype} (strings, objects, None and complex are refused)"
        )
    return array


def check_finite(array: np.ndarray, what: str) -> None:
    """Refuse NaN and infinite values, naming how many there are and where the first one is."""
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        bad = np.argwhere(~np.isfinite(array))
        raise InputError(
            f"{what} contains {len(bad)} NaN or infinite value(s), first at index {tuple(int(i) for i in bad[0])}"
        )


def check_count(count: int, limit: int, what: str) -> None:
    """Refuse an empty batch, or one above the configured limit."""
    if count == 0:
        raise InputError(f"{what}: empty batch (no rows)")
    if count > limit:
        raise BatchTooLarge(f"{what}: batch of {count} is above the limit of {limit}; split it into smaller requests")


def check_int(value: Any, name: str, low: int, high: int | None = None) -> int:
    """An integer option in [low, high]; bools and floats are refused rather than truncated."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON Schema's integer: 3.0 is the integer 3
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"[{low}, {high}]" if high is not None else f">= {low}"
        error = BatchTooLarge if high is not None and value > high else InputError
        raise error(f"{name} must be in {bound}, got {value}")
    return int(value)
