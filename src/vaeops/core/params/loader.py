"""Read params.yaml once: type-check every key against its section's dataclass, then run the section's checks."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vaeops.core.errors import ParamsError
from vaeops.core.params.checks import shown
from vaeops.core.params.data import DataParams
from vaeops.core.params.drift import DriftParams
from vaeops.core.params.evaluate import EvaluateParams
from vaeops.core.params.export import ExportParams
from vaeops.core.params.model import ModelParams
from vaeops.core.params.promote import PromoteParams
from vaeops.core.params.serve import ServeParams
from vaeops.core.params.train import TrainParams
from vaeops.core.params.validate import ValidateParams

DEFAULT_PARAMS_PATH = Path("params.yaml")
SCIENTIFIC = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")

SECTIONS: dict[str, type] = {
    "data": DataParams,
    "validate": ValidateParams,
    "drift": DriftParams,
    "promote": PromoteParams,
    "export": ExportParams,
    "serve": ServeParams,
    "evaluate": EvaluateParams,
    "model": ModelParams,
    "train": TrainParams,
}


@dataclass(frozen=True)
class Params:
    """All sections of params.yaml, plus the path they came from."""

    sections: dict[str, Any]
    path: Path

    def __getattr__(self, name: str) -> Any:
        try:
            return self.sections[name]
        except KeyError:
            raise AttributeError(name) from None

    def section_dict(self, name: str) -> dict[str, Any]:
        """Return one section as a plain dict (for manifests and checkpoints)."""
        return dataclasses.asdict(self.sections[name])


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """Check `value` against a type hint, converting only what is lossless (int -> float, list -> tuple)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(name, value, option)
            except ParamsError as exc:
                errors.append(str(exc))
        raise ParamsError(errors[0] if errors else f"{name}: unexpected value {shown(value)}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"{name}: expected a list, got {shown(value)}")
        (item_hint, *_) = typing.get_args(hint) or (Any,)
        return [_coerce(f"{name}[{i}]", item, item_hint) for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamsError(f"{name}: expected a mapping, got {shown(value)}")
        return dict(value)
    if hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{name}: expected true or false, got {shown(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{name}: expected an integer, got {shown(value)}")
        return value
    if hint is float:
        if isinstance(value, str) and SCIENTIFIC.fullmatch(value.strip()):
            return float(value)  # `lr: 1e-3`: YAML 1.1 reads a number without a dot as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{name}: expected a number, got {shown(value)}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ParamsError(f"{name}: expected a string, got {shown(value)}")
        return value
    raise ParamsError(f"{name}: unsupported parameter type {hint!r}")


def build_section(name: str, raw: Any) -> Any:
    """Build and check the dataclass of one section from its raw YAML mapping."""
    cls = SECTIONS[name]
    if raw is None:
        raise ParamsError(f"params section {name!r} is empty; give it its keys (the repository's params.yaml lists them)")
    if not isinstance(raw, dict):
        raise ParamsError(f"params section {name!r} must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ParamsError(f"unknown key(s) in section {name!r}: {', '.join(unknown)}; known keys: {', '.join(sorted(known))}")
    values = {key: _coerce(f"{name}.{key}", value, hints[key]) for key, value in raw.items()}
    section = cls(**values)
    section.check()
    return section


def parse_params(raw: Any, path: Path = DEFAULT_PARAMS_PATH) -> Params:
    """Turn the parsed YAML document into checked, typed sections; every section must be there, none empty, so a
    forgotten or emptied section is an error naming it rather than code defaults used in silence."""
    if raw is None:
        raise ParamsError(f"{path} is empty; it needs the sections {', '.join(SECTIONS)}")
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: the top level must be a mapping of sections, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ParamsError(f"{path}: unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    sections = {name: build_section(name, raw[name]) for name in SECTIONS if name in raw}
    missing = [name for name in SECTIONS if name not in raw]
    if missing:
        raise ParamsError(f"{path} has no section(s) {', '.join(missing)}; every stage's section must be there "
                          "(the repository's params.yaml lists them)")
    return Params(sections, Path(path))


def load_params(path: str | Path = DEFAULT_PARAMS_PATH, overrides: dict[str, Any] | None = None) -> Params:
    """Read, check and type params.yaml; `overrides` maps "section.key" to a value (CLI and flow overrides)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamsError(f"params file not found: {path}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {exc}") from None
    if overrides:
        raw = dict(raw or {})
        for dotted, value in overrides.items():
            section, _, key = dotted.partition(".")
            if not key:
                raise ParamsError(f"override {dotted!r} must look like section.key")
            raw[section] = {**(raw.get(section) or {}), key: value}
    return parse_params(raw, path)
