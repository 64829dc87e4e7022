"""Retraining as a Prefect 3 flow: prepare -> validate -> drift -> train (vae, plugin, autoencoder) -> evaluate -> export -> promote.

Every task calls the same stage function as `vaeops <stage>` and `dvc repro`. The task cache is keyed on what dvc.yaml
says the stage reads (file hashes + params values), so an unchanged stage is skipped. Run from the repo root:
`python flows/retrain.py [--params params.yaml] [--dataset mnist --source-dir DIR] [--force-retrain]
[--accept-contract-change]`.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import INPUTS, NO_CACHE, TASK_SOURCE

from vaeops.core.errors import (
    CheckpointError,
    DataError,
    DownloadError,
    ExportError,
    ParamsError,
    TrainingDiverged,
    VaeopsError,
    ValidationFailed,
)
from vaeops.core.params import Params, load_params
from vaeops.lifecycle import record as dvc_record
from vaeops.lifecycle.fingerprint import (
    StageSpec,
    fingerprint,
    outputs_digest,
    stage_specs,
)

# dvc.yaml stage -> (module, stage function, keyword arguments): the one implementation of each stage.
STAGES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "prepare": ("vaeops.data.prepare", "prepare", {}),
    "validate": ("vaeops.data.validate", "validate", {}),
    "drift": ("vaeops.data.drift", "drift", {}),
    "train@vae": ("vaeops.training.train", "train", {"variant": "vae"}),
    "train@plugin": ("vaeops.training.train", "train", {"variant": "plugin"}),
    "train@autoencoder": ("vaeops.training.train", "train", {"variant": "autoencoder"}),
    "evaluate": ("vaeops.evaluation.evaluate", "evaluate", {}),
    "export": ("vaeops.export.export", "export", {}),
    "promote": ("vaeops.lifecycle.promote", "promote", {}),
}
# Failures no retry can fix: bad params or data, a diverged run, a model that failed its export checks. A download
# that failed is a DataError too, but the network may be back on the next try.
PERMANENT = (ParamsError, DataError, ValidationFailed, TrainingDiverged, CheckpointError, ExportError)


def transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry condition: retry I/O and DVC-remote failures, never one that would repeat (see PERMANENT)."""
    return isinstance(state.data, DownloadError) or not isinstance(state.data, PERMANENT)


def run_stage(stage: str, params_file: str, outs: tuple[str, ...], overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Call the stage function (looked up at call time) and return its small summary and a digest of what it wrote."""
    module, function, kwargs = STAGES[stage]
    summary = getattr(importlib.import_module(module), function)(load_params(params_file, overrides), **kwargs)
    summary = summary.model_dump(mode="json") if hasattr(summary, "model_dump") else summary or {}
    scalars = {k: v for k, v in summary.items() if v is None or isinstance(v, (str, int, float, bool))}
    return {"summary": scalars, "outs": outputs_digest(outs)}


def stage_task(name: str, **options: Any):
    """A cached Prefect task for one stage. Its arguments are its cache key: the repo root (two checkouts never share
    results), the params file, the stage, its outs and `key`, the fingerprint of all the stage reads."""

    @task(name=name, task_run_name="{stage}", cache_policy=INPUTS + TASK_SOURCE, persist_result=True, **options)
    def run(root: str, params_file: str, stage: str, outs: tuple[str, ...], key: str,
            overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        return run_stage(stage, params_file, outs, overrides)

    return run


IO_RETRIES = {"retries": 1, "retry_delay_seconds": 10, "retry_condition_fn": transient}
prepare_task = stage_task("prepare", retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=transient)
validate_task = stage_task("validate")  # a verdict on the data: a retry would give the same answer
drift_task = stage_task("drift")  # likewise
train_task = stage_task("train", **IO_RETRIES)
evaluate_task = stage_task("evaluate", **IO_RETRIES)
export_task = stage_task("export", **IO_RETRIES)
promote_task = stage_task("promote", **IO_RETRIES)


@task(name="record", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[10, 30, 60], retry_condition_fn=transient)
def record_task(root: str) -> dict[str, Any]:
    """`dvc commit` so dvc.lock matches this run, check `dvc status` is clean, `dvc push` to the default remote."""
    return dvc_record.record(root)


@task(name="git-commit", cache_policy=NO_CACHE)
def git_task(root: str, message: str) -> str | None:
    """Commit dvc.lock, params.yaml and the metrics under reports/ to git (promote.git_commit)."""
    return dvc_record.git_commit(root, message)


def commit_message(decision: dict[str, Any]) -> str:
    """The git commit message of a run: which run, which model, the gate's verdict, the champion after it."""
    from prefect.runtime import flow_run

    verdict = "promoted" if decision.get("promoted") else "not promoted"
    return (f"vaeops retrain {flow_run.get_name() or 'run'}: {decision['challenger']['model_version']} {verdict}; "
            f"champion {decision.get('champion')}\n\n" + "\n".join(decision.get("reasons", [])))


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
    create_markdown_artifact(key="validation-summary", description="Great Expectations gate",
                             markdown=f"# Validation\n\n```\n{summary(report)}\n```\n{failures}\n")


def publish_drift(params: Params) -> None:
    """Artifact: the drift verdict and each feature's score against the champion's training data."""
    report = read_json(params.drift.report)
    if report:
        lines = "".join(f"\n- {m}" for m in report.get("messages", []))
        create_markdown_artifact(key="drift-report", description=f"drift: {report['level']}",
                                 markdown=f"# Drift: {report['level']}\n{lines}\n\n```\n{json.dumps(report.get('scores', {}), indent=2)}\n```\n")


def headline(params: Params) -> list[dict[str, Any]]:
    """One row per evaluated model (vae, plugin): test NLL, active units, collapse flag."""
    from vaeops.lifecycle.promote import model_metrics

    path = Path(params.export.metrics)
    metrics = read_json(path)
    return [{"model": model, **model_metrics(metrics, model, path)} for model in params.evaluate.models] if metrics else []


def publish_results(params: Params, decision: dict[str, Any]) -> None:
    """Artifacts: the metrics table, the promotion decision with its reasons, and the evaluation report."""
    rows = headline(params)
    if rows:
        create_table_artifact(key="metrics", table=rows, description="test split: each trained model variant")
    verdict = "promoted" if decision["promoted"] else "not promoted"
    reasons = "\n".join(f"- {reason}" for reason in decision["reasons"])
    create_markdown_artifact(key="promotion-decision", description=verdict,
                             markdown=f"# {decision['challenger']['model_version']}: {verdict}\n\n{reasons}\n\n"
                                      f"champion: {decision['champion']} in `{decision['champion_dir']}/`\n")
    report = Path(params.evaluate.out_dir) / "report.md"
    if report.is_file():
        create_markdown_artifact(key="evaluation-report", markdown=report.read_text(encoding="utf-8"),
                                 description=str(report))


def run_step(stage: str, run: Any, specs: dict[str, StageSpec], params: Params, params_file: str,
             done: dict[str, str], refresh: bool = False, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one stage task (or take its cached result) and return its summary; a failed stage raises its error."""
    logger = get_run_logger()
    logger.info("%s: started", stage)
    started = time.perf_counter()
    spec = specs[stage]
    # Inputs outside dvc.yaml: the files of a data feed, and the pin that tells the gate to keep the champion.
    extra = ((params.data.source_dir,) if stage == "prepare" and params.data.source_dir
             else (str(Path(params.promote.history_dir) / "pin.json"),) if stage == "promote" else ())
    # Run-only overrides (an accepted contract change) reach the stages that read those keys, and their cache keys,
    # but not params.yaml; the other stages keep their cached results.
    mine = {key: value for key, value in (overrides or {}).items()
            if any(key == name or key.startswith(name + ".") for name in spec.params)}
    args = (os.getcwd(), params_file, stage, spec.outs, fingerprint(spec, params, extra), mine or None)
    state = (run.with_options(refresh_cache=True) if refresh else run)(*args, return_state=True)
    if state.is_completed() and state.name == "Cached" and state.result()["outs"] != outputs_digest(spec.outs):
        # The inputs are unchanged but the outputs were changed or deleted since: the cache cannot stand in for them.
        state = run.with_options(refresh_cache=True)(*args, return_state=True)
    done[stage] = "failed" if not state.is_completed() else "skipped (cached)" if state.name == "Cached" else "ran"
    logger.info("%s: %s in %.1f s", stage, done[stage], time.perf_counter() - started)
    return state.result()["summary"]


@flow(name="vaeops-retrain", description=__doc__.splitlines()[0])
def retrain(params_file: str = "params.yaml", dataset: str | None = None, source_dir: str | None = None,
            force_retrain: bool = False, accept_contract_change: bool = False) -> dict[str, Any]:
    """Retrain on the configured (or given) data, gate the new model, promote it if it wins, record it with DVC.

    `dataset` / `source_dir` override the `data` section and are written into the params file (as `dvc exp run -S`
    does) so dvc.lock records the data this run used. `force_retrain` retrains even when the cache says nothing changed.
    """
    logger = get_run_logger()
    overrides = {f"data.{k}": v for k, v in (("dataset", dataset), ("source_dir", source_dir)) if v is not None}
    if overrides and dvc_record.set_params(params_file, overrides):
        logger.info("wrote %s into %s", overrides, params_file)
    run_overrides = {"promote.accept_contract_change": True} if accept_contract_change else {}
    params = load_params(params_file, run_overrides or None)
    specs = stage_specs(".")
    missing = sorted(set(STAGES) - set(specs))
    if missing:
        raise ParamsError(f"dvc.yaml has no stage(s) {', '.join(missing)}: the flow and `dvc repro` must run the same pipeline")
    done: dict[str, str] = {}
    outcome: dict[str, Any] = {"stages": done, "report": str(Path(params.evaluate.out_dir) / "report.md")}

    def step(stage: str, run: Any, refresh: bool = False) -> None:
        run_step(stage, run, specs, params, params_file, done, refresh, run_overrides)

    try:
        step("prepare", prepare_task)
        try:
            step("validate", validate_task)
        finally:
            publish_validation(params)
        try:
            step("drift", drift_task)
        finally:
            publish_drift(params)
        outcome["drift"] = read_json(params.drift.report)
        for stage in ("train@vae", "train@plugin", "train@autoencoder"):
            step(stage, train_task, refresh=force_retrain)
        step("evaluate", evaluate_task)
        step("export", export_task)
        step("promote", promote_task)
        decision = read_json(params.promote.decision)
        outcome.update(metrics=headline(params), promotion=decision)
        publish_results(params, decision)
        logger.info("record: started")
        started = time.perf_counter()
        outcome["record"] = record_task(os.getcwd())
        done["record"] = "ran"
        logger.info("record: ran in %.1f s", time.perf_counter() - started)
        if params.promote.git_commit:
            outcome["git_commit"] = git_task(os.getcwd(), commit_message(decision))
            logger.info("git: %s", outcome["git_commit"] or "nothing to commit")
    except Exception as exc:
        logger.error("run stopped: %s\n%s", exc, format_summary(outcome))
        raise
    create_markdown_artifact(key="run-summary", markdown=f"```\n{format_summary(outcome)}\n```\n",
                             description="stages, metrics, decision")
    return outcome


def format_summary(outcome: dict[str, Any]) -> str:
    """The end-of-run summary: stages run or skipped, headline metrics, the promotion decision, where the report is."""
    lines = ["stages:"] + [f"  {stage:13s} {state}" for stage, state in outcome["stages"].items()]
    drift = outcome.get("drift")
    if drift:
        lines.append(f"drift against the champion's data: {drift['level']}"
                     + "".join(f"\n  {message}" for message in drift.get("messages", [])))
    for row in outcome.get("metrics") or []:
        lines.append(f"model {row['model']:7s} test NLL {row['nll']:.3f} nats, {row['active_units']} active units"
                     + (", POSTERIOR COLLAPSED" if row["collapsed"] else ""))
    decision = outcome.get("promotion")
    if decision:
        verdict = "PROMOTED" if decision["promoted"] else "not promoted"
        # A cached promote stage means the decision on record was taken by an earlier run on the same inputs.
        when = " (earlier run, same inputs)" if outcome["stages"].get("promote", "").startswith("skipped") else ""
        lines.append(f"promotion{when}: {decision['challenger']['model_version']} {verdict}; "
                     f"champion {decision['champion']} in {decision['champion_dir']}/")
        lines += [f"  {reason}" for reason in decision["reasons"]]
    if outcome.get("record"):
        lines.append(f"dvc: dvc.lock committed, status clean, push: {outcome['record']['pushed']}")
    lines.append(f"report: {outcome['report']}")
    return "\n".join(lines)


def quiet_task_states() -> None:
    """Drop Prefect's "Finished in state Completed()" line per task from the terminal: run_step already logs each
    stage's start and its end with the time taken. Failures, retries and every other task log line still show."""
    logging.getLogger("prefect.task_runs").addFilter(
        lambda record: not record.getMessage().startswith(("Finished in state Completed", "Finished in state Cached")))


def main(argv: list[str] | None = None) -> int:
    """`python flows/retrain.py`: one run of the flow, then the summary on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    parser.add_argument("--dataset", help="override data.dataset (digits, mnist, fashion-mnist)")
    parser.add_argument("--source-dir", help="override data.source_dir: a folder with the four IDX files")
    parser.add_argument("--force-retrain", action="store_true", help="retrain even if nothing changed")
    parser.add_argument("--accept-contract-change", action="store_true",
                        help="let the gate promote a model with another input contract (image shape, likelihood)")
    args = parser.parse_args(argv)
    quiet_task_states()
    lines: list[str] = []
    # Printed at exit, after Prefect has flushed its logs and stopped its temporary server (their exit handlers are
    # registered later, so they run first): the summary is the last thing on the terminal.
    atexit.register(lambda: print("\n" + "\n".join(lines), flush=True))
    state = retrain(args.params, args.dataset, args.source_dir, args.force_retrain, args.accept_contract_change,
                    return_state=True)
    if state.is_completed():
        lines.append(format_summary(state.result()))
        return 0
    error = state.result(raise_on_failure=False)
    lines.append(f"retrain FAILED: {error}")
    return error.exit_code if isinstance(error, VaeopsError) else 1


if __name__ == "__main__":
    sys.exit(main())
