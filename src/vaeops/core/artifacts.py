"""Typed JSON artifacts: pydantic models read and written in one place, floats at the precision they carry.

Every JSON file a stage hands to another (metrics, decisions, manifests, histories) is a pydantic model. Reading one
checks it against its schema and turns any fault into the caller's error type with the file and the key named;
writing one rounds every float to SIGNIFICANT digits, so the same run on another CPU (whose last bits differ) writes
the same bytes, and a fresh clone's `make run` leaves `git status` clean.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from vaeops.core.errors import DataError
from vaeops.core.fileio import read_json_object, write_json_atomic

SIGNIFICANT = 6  # the Monte-Carlo noise of every estimate here is far above the 6th significant digit
A = TypeVar("A", bound=BaseModel)


class Artifact(BaseModel):
    """Base of every JSON artifact: unknown keys are refused, so a misspelt key is an error, not a silent default."""

    model_config = ConfigDict(extra="forbid")


def rounded(value: Any, digits: int = SIGNIFICANT) -> Any:
    """`value` with every float rounded to `digits` significant digits (recursively through lists and dicts)."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}") if math.isfinite(value) else value
    if isinstance(value, dict):
        return {key: rounded(item, digits) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(item, digits) for item in value]
    return value


def describe(exc: ValidationError) -> str:
    """The first problem of a failed validation in one line: the key's dotted path, the problem, the value (cut)."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    shown = repr(first.get("input"))
    shown = shown if len(shown) <= 200 else f"{shown[:200]}... ({len(shown):,} characters)"
    more = f" (and {exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else ""
    return f"key {where!r}: {first['msg']}, got {shown}{more}"


def parse_artifact(raw: Any, model: type[A], where: str, error: type[Exception] = DataError) -> A:
    """Check a parsed JSON value against `model`; a mismatch raises `error` naming `where` and the key."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise error(f"{where}: {describe(exc)}") from None


def read_artifact(
    path: str | Path, model: type[A], what: str, error: type[Exception] = DataError, missing_hint: str = ""
) -> A:
    """Read a JSON artifact and check it against its schema; every failure is `error` naming the file and the key."""
    raw = read_json_object(path, what, error, missing_hint)
    return parse_artifact(raw, model, f"{what} {path}", error)


def dump_artifact(artifact: BaseModel, digits: int = SIGNIFICANT) -> dict[str, Any]:
    """The artifact as plain JSON types, floats rounded to `digits` significant digits."""
    return rounded(artifact.model_dump(mode="json"), digits)


def write_artifact(path: str | Path, artifact: BaseModel, digits: int = SIGNIFICANT) -> None:
    """Write an artifact atomically as indented, key-sorted JSON with floats rounded to `digits` digits."""
    write_json_atomic(path, dump_artifact(artifact, digits))
