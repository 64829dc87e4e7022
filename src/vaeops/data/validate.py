"""Validate stage: a Great Expectations gate over per-image and per-class statistics of every prepared split."""

from __future__ import annotations

import argparse
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vaeops.core.errors import DataError, ValidationFailed
from vaeops.core.fileio import sha256_file, write_json_atomic
from vaeops.core.params import Params, load_params
from vaeops.core.progress import Progress
from vaeops.data.sources import layout
from vaeops.data.stats import (
    CLASS_COLUMNS,
    IMAGE_COLUMNS,
    Bounds,
    class_frame,
    image_frame,
    mark_leaks,
    resolve_bounds,
)
from vaeops.dataset.splits import SPLITS, load_manifest, load_split, manifest_sha256


def validate(params: Params) -> dict[str, Any]:
    """Stage function: run the gate, write reports/validation.json (pass or fail); raise ValidationFailed on failure."""
    started = time.perf_counter()
    prepared = Path(params.data.out_dir)
    manifest = load_manifest(prepared)
    dataset = manifest.get("dataset")
    if dataset != params.data.dataset:
        raise DataError(
            f"{prepared} holds {dataset!r} but params say data.dataset: {params.data.dataset!r}; run `vaeops "
            f"prepare` first"
        )
    check_files(prepared, manifest)
    image_shape, classes = layout(dataset)
    bounds = resolve_bounds(params.validate, dataset)
    with Progress(3 * len(SPLITS), "validate: per-image statistics, then the expectations", unit="step") as progress:
        splits, frames = {}, {}
        for name in SPLITS:
            splits[name] = load_split(prepared, name)
            frames[name] = image_frame(*splits[name], bounds.ink_threshold)
            progress.update()
        frames = mark_leaks(frames)
        tables = {}
        for name, (_, labels) in splits.items():
            tables[f"{name}_images"] = (
                frames[name],
                image_checks(bounds, classes, image_shape, manifest["counts"][name]["total"]),
            )
            tables[f"{name}_classes"] = (class_frame(labels, classes), class_checks(bounds))
        checks = run_gx(tables, progress)
    failures = [describe_failure(check) for check in checks if not check["success"]]
    report = {
        "success": not failures,
        "dataset": dataset,
        "data_sha256": manifest_sha256(prepared),
        "bounds": vars(bounds),
        "rows": {name: int(len(frame)) for name, frame in frames.items()},
        "leaked_images": {name: int(frame["leaked"].sum()) for name, frame in frames.items()},
        "expectations": checks,
        "evaluated": len(checks),
        "failed": len(failures),
        "failures": failures,
    }
    # Written on failure too: the report is the stage's verdict on the current data. No timings in it, so the
    # same data always gives the same bytes (DVC sees no change).
    write_json_atomic(params.validate.report, _jsonable(report))
    if failures:
        raise ValidationFailed(
            f"{len(failures)} of {len(checks)} expectations failed on {prepared} ({dataset}); report: "
            f"{params.validate.report}\n  - " + "\n  - ".join(failures)
        )
    return {**report, "seconds": round(time.perf_counter() - started, 3)}


def check_files(prepared: Path, manifest: dict[str, Any]) -> None:
    """Refuse split files whose sha256 differs from the manifest (edited or corrupted after prepare)."""
    for name, expected in manifest.get("files", {}).items():
        path = prepared / name
        if not path.exists():
            raise DataError(f"{path} is listed in the manifest but missing; run `vaeops prepare`")
        actual = sha256_file(path)
        if actual != expected:
            raise DataError(
                f"{path}: sha256 {actual[:12]}... differs from the manifest's {expected[:12]}...; run `vaeops prepare`"
            )


def image_checks(
    bounds: Bounds, classes: tuple[int, ...], image_shape: tuple[int, int], manifest_rows: int
) -> list[tuple[str, str, dict]]:
    """The per-image expectations of one split, as (check name, GX expectation class name, kwargs)."""
    pixels = image_shape[0] * image_shape[1]
    return [
        ("schema", "ExpectTableColumnsToMatchSet", {"column_set": list(IMAGE_COLUMNS), "exact_match": True}),
        ("row count matches manifest", "ExpectTableRowCountToEqual", {"value": manifest_rows}),
        ("minimum row count", "ExpectTableRowCountToBeBetween", {"min_value": bounds.min_rows}),
        (
            "no NaN or inf pixels",
            "ExpectColumnValuesToBeBetween",
            {"column": "nonfinite", "min_value": 0, "max_value": 0},
        ),
        (
            "pixel minimum in [0, 1]",
            "ExpectColumnValuesToBeBetween",
            {"column": "min", "min_value": 0.0, "max_value": 1.0},
        ),
        (
            "pixel maximum in [0, 1]",
            "ExpectColumnValuesToBeBetween",
            {"column": "max", "min_value": 0.0, "max_value": 1.0},
        ),
        ("every image has finite pixels", "ExpectColumnValuesToNotBeNull", {"column": "mean"}),
        ("labels in the class set", "ExpectColumnValuesToBeInSet", {"column": "label", "value_set": list(classes)}),
        (
            "ink fraction bounds",
            "ExpectColumnValuesToBeBetween",
            {"column": "ink_fraction", "min_value": bounds.ink_fraction_min, "max_value": bounds.ink_fraction_max},
        ),
        (
            "pixel count",
            "ExpectColumnValuesToBeBetween",
            {"column": "pixel_count", "min_value": pixels, "max_value": pixels},
        ),
        ("content hash present", "ExpectColumnValuesToNotBeNull", {"column": "hash"}),
        (
            "images shared with other splits",
            "ExpectColumnSumToBeBetween",
            {"column": "leaked", "min_value": 0, "max_value": bounds.max_leaked_images},
        ),
    ]


def class_checks(bounds: Bounds) -> list[tuple[str, str, dict]]:
    """The per-class expectations of one split: every class present, each within the share bounds."""
    return [
        ("schema", "ExpectTableColumnsToMatchSet", {"column_set": list(CLASS_COLUMNS), "exact_match": True}),
        ("every class present", "ExpectColumnValuesToBeBetween", {"column": "count", "min_value": 1}),
        (
            "class share bounds",
            "ExpectColumnValuesToBeBetween",
            {"column": "share", "min_value": bounds.class_share_min, "max_value": bounds.class_share_max},
        ),
    ]


def run_gx(
    tables: dict[str, tuple[pd.DataFrame, list[tuple[str, str, dict]]]], progress: Progress | None = None
) -> list[dict[str, Any]]:
    """Validate each frame against its expectations in a fresh ephemeral GX context; one result dict per expectation."""
    import great_expectations as gx  # slow import (2-3 s): only when the gate runs
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # GX's modules set their own loggers to INFO and announce where the ephemeral docs site goes: noise to a person
    # running the gate. Warnings and errors still show.
    for name in [n for n in logging.root.manager.loggerDict if n.split(".")[0] == "great_expectations"]:
        logging.getLogger(name).setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    source = context.data_sources.add_pandas("prepared")
    results = []
    for table, (frame, checks) in tables.items():
        batch = source.add_dataframe_asset(table).add_batch_definition_whole_dataframe("whole")
        suite = gx.ExpectationSuite(name=table)
        for name, kind, kwargs in checks:
            suite.add_expectation(getattr(gxe, kind)(**kwargs, meta={"check": name}))
        suite = context.suites.add(suite)
        definition = context.validation_definitions.add(gx.ValidationDefinition(name=table, data=batch, suite=suite))
        index = ["class"] if "class" in frame.columns else []
        outcome = definition.run(
            batch_parameters={"dataframe": frame},
            result_format={"result_format": "SUMMARY", "unexpected_index_column_names": index},
        )
        for item in outcome.results:
            results.append(_result_entry(table, item.to_json_dict()))
        if progress is not None:
            progress.update()
    return results


def _result_entry(table: str, raw: dict[str, Any]) -> dict[str, Any]:
    config, result = raw["expectation_config"], raw.get("result") or {}
    kwargs = {k: v for k, v in config["kwargs"].items() if k != "batch_id"}
    entry = {
        "table": table,
        "check": (config.get("meta") or {}).get("check", config["type"]),
        "expectation": config["type"],
        "kwargs": kwargs,
        "success": bool(raw["success"]),
        "observed": result.get("observed_value"),
    }
    if "unexpected_count" in result:
        entry.update(
            element_count=result.get("element_count"),
            unexpected_count=result["unexpected_count"],
            unexpected_sample=result.get("partial_unexpected_list", [])[:10],
        )
        rows = result.get("partial_unexpected_index_list") or []
        if rows and isinstance(rows[0], dict) and "class" in rows[0]:
            entry["unexpected_classes"] = [row["class"] for row in rows]
    if raw.get("exception_info", {}).get("raised_exception"):
        entry["exception"] = raw["exception_info"].get("exception_message")
    return entry


def describe_failure(check: dict[str, Any]) -> str:
    """One line naming a failed expectation, its bounds and the offending values or counts."""
    where = f"{check['table']}: {check['check']} ({check['expectation']}"
    where += f" on {check['kwargs']['column']})" if "column" in check["kwargs"] else ")"
    if "unexpected_count" in check:
        detail = (
            f"{check['unexpected_count']} of {check['element_count']} rows outside the expectation, e.g. "
            f"{check['unexpected_sample'][:5]}"
        )
        if check.get("unexpected_classes"):
            detail += f" (classes {check['unexpected_classes']})"
    else:
        detail = f"observed {check['observed']}"
    bounds = {
        k: v for k, v in check["kwargs"].items() if k in ("min_value", "max_value", "value", "value_set", "column_set")
    }
    return f"{where}: {detail}; expected {bounds}" + (
        f"; error: {check['exception']}" if check.get("exception") else ""
    )


def summary(report: dict[str, Any]) -> str:
    """A few lines for the terminal: verdict, rows and failures per split."""
    lines = [
        f"validation {'PASSED' if report['success'] else 'FAILED'}: {report['dataset']}, "
        f"{report['evaluated'] - report['failed']}/{report['evaluated']} expectations met "
        f"({report.get('seconds', 0):.1f} s)"
    ]
    for name, rows in report["rows"].items():
        failed = sum(1 for c in report["expectations"] if c["table"].startswith(f"{name}_") and not c["success"])
        lines.append(
            f"  {name:5s} {rows:6d} images, {report['leaked_images'][name]} shared with other splits, {failed} failed"
        )
    lines += [f"  FAILED {line}" for line in report["failures"]]
    return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    """Plain JSON types only: numpy scalars to Python, NaN/inf to strings (strict JSON has neither)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def run_cli(args: argparse.Namespace) -> None:
    """`vaeops validate`: run the gate and print the summary; a failure exits non-zero via ValidationFailed."""
    print(summary(validate(load_params(args.params, args.overrides))))
