"""Read params.yaml once, apply `-S section.key=value` overrides, and check every section against its model."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from vaeops.core.errors import ParamsError
from vaeops.core.params.base import params_error, shown
from vaeops.core.params.data import DataParams
from vaeops.core.params.drift import DriftParams
from vaeops.core.params.evaluate import EvaluateParams
from vaeops.core.params.export import ExportParams
from vaeops.core.params.model import ModelParams
from vaeops.core.params.orchestrate import OrchestrateParams
from vaeops.core.params.promote import PromoteParams
from vaeops.core.params.serve import ServeParams
from vaeops.core.params.train import TrainParams
from vaeops.core.params.validate import ValidateParams

DEFAULT_PARAMS_PATH = Path("params.yaml")


class Params(BaseModel):
    """All sections of params.yaml, typed, plus the path they came from."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    data: DataParams
    validate_: ValidateParams  # `validate` would shadow pydantic's own method; params.validate still reads it
    drift: DriftParams
    promote: PromoteParams
    export: ExportParams
    serve: ServeParams
    evaluate: EvaluateParams
    model: ModelParams
    train: TrainParams
    orchestrate: OrchestrateParams
    path: Path = DEFAULT_PARAMS_PATH

    @property
    def validate(self) -> ValidateParams:  # type: ignore[override]
        """The `validate` section."""
        return self.validate_

    def section(self, name: str) -> BaseModel:
        """One section by its params.yaml name."""
        return getattr(self, SECTIONS[name])

    def section_dict(self, name: str) -> dict[str, Any]:
        """One section as a plain dict (for manifests and checkpoints)."""
        return self.section(name).model_dump()

    def value(self, dotted: str) -> Any:
        """The value behind "section.key", or a whole section's dict for "section"."""
        section, _, key = dotted.partition(".")
        if section not in SECTIONS:
            raise ParamsError(f"{dotted!r} names no section of params.yaml ({', '.join(SECTIONS)})")
        values = self.section_dict(section)
        if key and key not in values:
            raise ParamsError(f"{dotted!r}: the {section!r} section has no key {key!r}")
        return values[key] if key else values


# params.yaml section -> Params field; each field's type is that section's model.
SECTIONS = {name.rstrip("_"): name for name in Params.model_fields if name != "path"}
SECTION_MODELS = {name: Params.model_fields[field].annotation for name, field in SECTIONS.items()}


def add_assignments_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    """The `-S section.key=value` option (repeatable), collected into `assignments` for parse_assignments()."""
    parser.add_argument(
        "-S", "--set", action="append", default=[], metavar="SECTION.KEY=VALUE", dest="assignments", help=help_text
    )


def parse_assignments(assignments: list[str] | None) -> dict[str, Any]:
    """`-S section.key=value` strings to overrides; each value is read as YAML (3, 1e-3, [64, 32], null, true)."""
    overrides: dict[str, Any] = {}
    for assignment in assignments or []:
        dotted, sep, text = assignment.partition("=")
        section, _, key = dotted.strip().partition(".")
        if not sep or not section or not key:
            raise ParamsError(f"-S {assignment!r}: write section.key=value (for example -S train.epochs=3)")
        try:
            overrides[f"{section}.{key}"] = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as exc:
            raise ParamsError(f"-S {assignment!r}: the value is not valid YAML: {exc}") from None
    return overrides


def apply_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """The raw document with "section.key" values replaced; a section or key params.yaml lacks is refused by name."""
    raw = dict(raw)
    for dotted, value in overrides.items():
        section, _, key = dotted.partition(".")
        if section not in SECTIONS or not key:
            raise ParamsError(
                f"override {dotted!r}: params.yaml has no section {section!r}; sections: {', '.join(SECTIONS)}"
            )
        if key not in SECTION_MODELS[section].model_fields:
            raise ParamsError(f"override {dotted!r}: the {section!r} section has no key {key!r}")
        raw[section] = {**(raw.get(section) or {}), key: value}
    return raw


def parse_params(raw: Any, path: Path = DEFAULT_PARAMS_PATH) -> Params:
    """Turn the parsed YAML document into checked, typed sections; every section must be there, none empty, so a
    forgotten or emptied section is an error naming it rather than code defaults used in silence."""
    if raw is None:
        raise ParamsError(f"{path} is empty; it needs the sections {', '.join(SECTIONS)}")
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: the top level must be a mapping of sections, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ParamsError(f"{path}: unknown section(s) {', '.join(map(str, unknown))}; known: {', '.join(SECTIONS)}")
    sections = {}
    for name, model in SECTION_MODELS.items():
        if name in raw and raw[name] is None:
            raise ParamsError(
                f"params section {name!r} is empty; give it its keys (the repository's params.yaml lists them)"
            )
        if name in raw and not isinstance(raw[name], dict):
            raise ParamsError(f"params section {name!r} must be a mapping, got {shown(raw[name])}")
        if name in raw:
            try:
                sections[SECTIONS[name]] = model.model_validate(raw[name])
            except ValidationError as exc:
                raise params_error(exc, name) from None
    missing = [name for name in SECTIONS if name not in raw]
    if missing:
        raise ParamsError(
            f"{path} has no section(s) {', '.join(missing)}; every stage's section must be there "
            "(the repository's params.yaml lists them)"
        )
    return Params(**sections, path=Path(path))


def load_params(path: str | Path = DEFAULT_PARAMS_PATH, overrides: dict[str, Any] | None = None) -> Params:
    """Read, check and type params.yaml; `overrides` maps "section.key" to a value (`-S`, flow and test overrides)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamsError(f"params file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ParamsError(f"params file {path} is not readable text: {exc}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {exc}") from None
    if overrides:
        raw = apply_overrides(raw if isinstance(raw, dict) else {}, overrides)
    return parse_params(raw, path)
