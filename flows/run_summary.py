"""What a retraining run shows: its Prefect artifacts (validation, drift, metrics, decision, report) and the summary
printed at its end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from vaeops.core.params import Params


def read_json(path: str | Path) -> dict[str, Any]:
    """A stage's JSON output, or {} when the stage has not written it."""
    path = Path(path)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def publish_validation(params: Params) -> None:
    """Artifact: the validation verdict and every failed expectation (also when the gate failed)."""
    report = read_json(params.validate.report)
    if not report:
        return
    from vaeops.data.validate import summary  # the same text `vaeops validate` prints

    failures = "".join(f"\n- {failure}" for failure in report.get("failures", []))
    create_markdown_artifact(
        key="validation-summary",
        description="Great Expectations gate",
        markdown=f"# Validation\n\n```\n{summary(report)}\n```\n{failures}\n",
    )


def publish_drift(params: Params) -> None:
    """Artifact: the drift verdict and each feature's score against the champion's training data."""
    report = read_json(params.drift.report)
    if report:
        lines = "".join(f"\n- {m}" for m in report.get("messages", []))
        create_markdown_artifact(
            key="drift-report",
            description=f"drift: {report['level']}",
            markdown=f"# Drift: {report['level']}\n{lines}\n\n"
            f"```\n{json.dumps(report.get('scores', {}), indent=2)}\n```\n",
        )


def headline(params: Params) -> list[dict[str, Any]]:
    """One row per evaluated model (vae, plugin): test NLL, active units, collapse flag."""
    from vaeops.lifecycle.promote import model_metrics

    path = Path(params.export.metrics)
    return (
        [{"model": model, **model_metrics(path, model)} for model in params.evaluate.models] if path.is_file() else []
    )


def publish_results(params: Params, decision: dict[str, Any]) -> None:
    """Artifacts: the metrics table, the promotion decision with its reasons, and the evaluation report."""
    rows = headline(params)
    if rows:
        create_table_artifact(key="metrics", table=rows, description="test split: each trained model variant")
    verdict = "promoted" if decision["promoted"] else "not promoted"
    reasons = "\n".join(f"- {reason}" for reason in decision["reasons"])
    create_markdown_artifact(
        key="promotion-decision",
        description=verdict,
        markdown=f"# {decision['challenger']['model_version']}: {verdict}\n\n{reasons}\n\n"
        f"champion: {decision['champion']} in `{decision['champion_dir']}/`\n",
    )
    report = Path(params.evaluate.out_dir) / "report.md"
    if report.is_file():
        create_markdown_artifact(
            key="evaluation-report", markdown=report.read_text(encoding="utf-8"), description=str(report)
        )


def format_summary(outcome: dict[str, Any]) -> str:
    """The end-of-run summary: stages run or skipped with their wall time, where fanned-out parts ran, headline
    metrics, the promotion decision, where the report is."""
    seconds = outcome.get("seconds") or {}
    lines = ["stages:"] + [
        f"  {stage:17s} {state}" + (f" ({seconds[stage]:.1f} s)" if stage in seconds else "")
        for stage, state in outcome["stages"].items()
    ]
    if "parts" in seconds:
        lines.append(f"  {'(parts on Dask)':17s} {seconds['parts']:.1f} s, before the joins above")
    drift = outcome.get("drift")
    if drift:
        lines.append(
            f"drift against the champion's data: {drift['level']}"
            + "".join(f"\n  {message}" for message in drift.get("messages", []))
        )
    for row in outcome.get("metrics") or []:
        lines.append(
            f"model {row['model']:7s} test NLL {row['nll']:.3f} nats, {row['active_units']} active units"
            + (", POSTERIOR COLLAPSED" if row["collapsed"] else "")
        )
    decision = outcome.get("promotion")
    if decision:
        verdict = "PROMOTED" if decision["promoted"] else "not promoted"
        # A cached promote stage means the decision on record was taken by an earlier run on the same inputs.
        when = " (earlier run, same inputs)" if outcome["stages"].get("promote", "").startswith("skipped") else ""
        lines.append(
            f"promotion{when}: {decision['challenger']['model_version']} {verdict}; "
            f"champion {decision['champion']} in {decision['champion_dir']}/"
        )
        lines += [f"  {reason}" for reason in decision["reasons"]]
    for stage, parts in (outcome.get("parts") or {}).items():
        lines.append(
            f"{stage} on Dask: " + ", ".join(f"{p['unit']} on worker {p['worker']} (pid {p['pid']})" for p in parts)
        )
    if outcome.get("record"):
        lines.append(f"dvc: dvc.lock committed, status clean, push: {outcome['record']['pushed']}")
    lines.append(f"report: {outcome['report']}")
    return "\n".join(lines)
