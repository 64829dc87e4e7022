"""Small value checks shared by the section dataclasses; each raises a ParamsError that names the key."""

from __future__ import annotations

from vaeops.core.errors import ParamsError


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    """`value` must be one of `choices`."""
    if value not in choices:
        raise ParamsError(f"{name}: unknown value {value!r}; choose one of {', '.join(choices)}")


def check_fraction(name: str, value: float) -> None:
    """`value` must lie in [0, 1)."""
    if not 0 <= value < 1:
        raise ParamsError(f"{name} must be in [0, 1), got {value}")


def is_cuda_index(device: str) -> bool:
    """True for "cuda:N"."""
    prefix, _, index = device.partition(":")
    return prefix == "cuda" and index.isdigit()


def shown(value: object, limit: int = 200) -> str:
    """repr(value) for an error message, cut to `limit` characters (a YAML alias can expand to megabytes)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"
