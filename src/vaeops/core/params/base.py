"""What every params section shares: a frozen pydantic model that refuses unknown keys, and readable errors."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from vaeops.core.errors import ParamsError

SCIENTIFIC = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")


def _number(value: Any) -> Any:
    """`lr: 1e-3` is a number: YAML 1.1 (PyYAML, DVC) reads a number without a dot as a string."""
    return float(value) if isinstance(value, str) and SCIENTIFIC.fullmatch(value.strip()) else value


Number = Annotated[float, BeforeValidator(_number)]
Count = Annotated[int, Field(ge=1)]  # a size, K or count of which zero makes no sense: lists of them name the index


class Section(BaseModel):
    """One params.yaml section: typed (strict: no string read as a number, no 0 as false), frozen, no unknown key."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def shown(value: object, limit: int = 200) -> str:
    """repr(value) for an error message, cut to `limit` characters (a YAML alias can expand to megabytes)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def params_error(exc: ValidationError, prefix: str = "") -> ParamsError:
    """The first problem of a failed validation as a ParamsError naming the dotted key (`model.hidden[1]`)."""
    first = exc.errors()[0]
    key = prefix
    for part in first["loc"]:
        key += f"[{part}]" if isinstance(part, int) else f"{'.' if key else ''}{part}"
    if first["type"] == "value_error":  # a rule of the section's own: its message names every key it involves
        return ParamsError(first["msg"].removeprefix("Value error, "))
    if first["type"] == "extra_forbidden":
        return ParamsError(f"{key}: unknown key (a misspelt key is refused, not ignored)")
    if first["type"] == "missing":
        return ParamsError(f"{key}: missing; give it a value (the repository's params.yaml lists every key)")
    return ParamsError(f"{key}: {first['msg']}, got {shown(first['input'])}")
