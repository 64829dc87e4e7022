"""Retraining as a Prefect 3 flow: the pipeline's stages run, gated, promoted and recorded with DVC.

The stages: prepare, validate, drift, train (vae, plugin, autoencoder), evaluate, export, promote, then record.

Every task calls the same stage function as `vaeops <stage>` and `dvc repro`, from the one registry (vaeops.stages).
DVC's own status says whether a stage changed since dvc.lock (its command, deps, params, outs); an unchanged stage is
taken from the task cache, and a stage that ran is recorded in dvc.lock at once. Run from the repo root:
`python flows/retrain.py [--params params.yaml] [-S section.key=value ...] [--force-retrain]
[--accept-contract-change]`.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# Run directly or through `make run`, the flow behaves the same: Prefect's state and task cache in the checkout's
# .prefect/ (git-ignored), no telemetry, and time for a first start of Prefect's temporary server on 2 busy cores.
# Set before Prefect is imported; a caller's own settings (the tests', a deployment's) win.
for _name, _value in {
    "PREFECT_HOME": str(REPO / ".prefect"),
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "DVC_NO_ANALYTICS": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
}.items():
    os.environ.setdefault(_name, _value)

from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.artifacts import create_markdown_artifact  # noqa: E402
from prefect.cache_policies import INPUTS, NO_CACHE, TASK_SOURCE  # noqa: E402

from fanout import fan_out_stale, read_by, transient, where_ran  # noqa: E402  (flows/, beside this file)
from run_summary import (  # noqa: E402
    format_summary,
    headline,
    publish_drift,
    publish_results,
    publish_validation,
    read_json,
)
from vaeops.bundle.manifest import PROFILE  # noqa: E402
from vaeops.core.errors import ParamsError, VaeopsError  # noqa: E402
from vaeops.core.params import Params, add_assignments_option, load_params, parse_assignments  # noqa: E402
from vaeops.lifecycle import record as dvc_record  # noqa: E402
from vaeops.lifecycle.pipeline import DvcPipeline, extras_digest  # noqa: E402
from vaeops.stages import STAGES, Stage, resolve  # noqa: E402


def run_stage(
    stage: Stage, params_file: str, overrides: dict[str, Any] | None, parts: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Call the stage function with its params (the stage's fixed keys on top) and return its small summary; given
    the summaries of its parts, run elsewhere (flows/fanout.py), only join them."""
    params = stage.params(params_file, overrides)
    result = resolve(stage.split().join)(params, parts) if parts is not None else stage.load()(params)
    summary = result.model_dump(mode="json") if hasattr(result, "model_dump") else result or {}
    return {k: v for k, v in summary.items() if v is None or isinstance(v, (str, int, float, bool))}


def stage_task(stage: Stage) -> Any:
    """The Prefect task of one stage, named after it, retried on transient failures only. Its cache key is what DVC
    cannot see: the repo root (two checkouts never share results), the params file, the stage, the digest of its
    undeclared inputs and the run-only overrides it reads; whatever dvc.yaml declares, DVC's status decides. Not the
    parts' summaries: a stage joined from parts run on Dask leaves the result a local run would, for either to reuse."""

    @task(
        name=stage.name,
        task_run_name=stage.name,
        cache_policy=(INPUTS - "parts") + TASK_SOURCE,
        persist_result=True,
        retries=len(stage.retries),
        retry_delay_seconds=list(stage.retries) or 0,
        retry_condition_fn=transient,
    )
    def run(
        root: str,
        params_file: str,
        name: str,
        extras: str,
        overrides: dict[str, Any] | None = None,
        parts: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        return run_stage(stage, params_file, overrides, parts)

    return run


TASKS = {stage.name: stage_task(stage) for stage in STAGES}


@task(name="record", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[10, 30, 60], retry_condition_fn=transient)
def record_task(root: str) -> dict[str, Any]:
    """Check `dvc status` is clean (each stage was committed as it ran), `dvc push` to the default remote."""
    return dvc_record.record(root)


@task(name="git-commit", cache_policy=NO_CACHE)
def git_task(root: str, message: str) -> str | None:
    """Commit dvc.lock, params.yaml and the metrics under reports/ to git (promote.git_commit)."""
    return dvc_record.git_commit(root, message)


def commit_message(decision: dict[str, Any]) -> str:
    """The git commit message of a run: which run, which model, the gate's verdict, the champion after it."""
    from prefect.runtime import flow_run

    verdict = "promoted" if decision.get("promoted") else "not promoted"
    return (
        f"vaeops retrain {flow_run.get_name() or 'run'}: {decision['challenger']['model_version']} {verdict}; "
        f"champion {decision.get('champion')}\n\n" + "\n".join(decision.get("reasons", []))
    )


def extra_inputs(stage: str, params: Params) -> tuple[str, ...]:
    """Inputs a stage reads that dvc.yaml does not declare: a data feed's files, the champion's data profile (drift
    compares with it; declaring it would put drift after promote), the pin that tells the gate to keep the champion."""
    if stage == "prepare" and params.data.source_dir:
        return (params.data.source_dir,)
    if stage == "drift":
        return (str(Path(params.promote.champion_dir) / PROFILE),)
    if stage == "promote":
        return (str(Path(params.promote.history_dir) / "pin.json"),)
    return ()


def run_step(
    stage: Stage,
    pipeline: DvcPipeline,
    params: Params,
    params_file: str,
    done: dict[str, str],
    refresh: bool = False,
    overrides: dict[str, Any] | None = None,
    parts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Run one stage task, or take its cached result when DVC finds nothing changed; a stage that ran is recorded in
    dvc.lock at once. With `parts` (its parts' summaries, run by fan_out) the task only joins them. A failed stage
    raises its error."""
    logger = get_run_logger()
    logger.info("%s: started", stage.name)
    started = time.perf_counter()
    spec, run = pipeline.specs[stage.name], TASKS[stage.name]
    mine = read_by(spec.params, overrides)
    changed = pipeline.stale(stage.name)  # what DVC sees changed since dvc.lock: then the cache cannot stand in
    if changed:
        logger.info("%s: changed since dvc.lock: %s", stage.name, "; ".join(changed)[:300])
    args = (os.getcwd(), params_file, stage.name, extras_digest(extra_inputs(stage.name, params)), mine or None)
    if parts is not None:
        logger.info("%s: joining %d parts run on %s", stage.name, len(parts), sorted({p["worker"] for p in parts}))
    runner = run.with_options(refresh_cache=True) if refresh or changed or parts is not None else run
    state = runner(*args, parts, return_state=True)
    done[stage.name] = "failed" if not state.is_completed() else "skipped (cached)" if state.name == "Cached" else "ran"
    if done[stage.name] == "ran":
        pipeline.record(stage.name)
    logger.info("%s: %s in %.1f s", stage.name, done[stage.name], time.perf_counter() - started)
    return state.result()


# What each stage publishes as a Prefect artifact once it ends, failed or not.
PUBLISH = {"validate": publish_validation, "drift": publish_drift}


@flow(name="vaeops-retrain", description=__doc__.splitlines()[0])
def retrain(
    params_file: str = "params.yaml",
    overrides: dict[str, Any] | None = None,
    force_retrain: bool = False,
    accept_contract_change: bool = False,
) -> dict[str, Any]:
    """Retrain on the configured data, gate the new model, promote it if it wins, record it with DVC.

    `overrides` ("section.key" -> value, what `-S` gives) are written into the params file first, keeping its
    formatting, as `dvc exp run -S` does, so dvc.lock records what this run used. `accept_contract_change` is a
    decision for this run only (it is never written). `force_retrain` retrains even when nothing changed.
    """
    logger = get_run_logger()
    if overrides and dvc_record.set_params(params_file, overrides):
        logger.info("wrote %s into %s", overrides, params_file)
    run_overrides = {"promote.accept_contract_change": True} if accept_contract_change else {}
    params = load_params(params_file, run_overrides or None)
    pipeline = DvcPipeline(".")
    check_pipeline(pipeline)
    done: dict[str, str] = {}
    seconds: dict[str, float] = {}  # wall time of each step, fanned-out parts ("parts") included
    outcome: dict[str, Any] = {
        "stages": done,
        "seconds": seconds,
        "report": str(Path(params.evaluate.out_dir) / "report.md"),
    }
    parts: dict[str, list[dict[str, Any]]] | None = None if params.orchestrate.runner == "dask" else {}
    try:
        try:
            for stage in STAGES:
                try:
                    retrain_now = force_retrain and stage.command == "train"
                    started = time.perf_counter()
                    if stage.parts and parts is None:  # the first stage with parts: fan out all of them at once
                        parts = fan_out_stale(pipeline, params_file, force_retrain, run_overrides)
                        outcome["parts"] = {name: where_ran(found) for name, found in parts.items()}
                        seconds["parts"] = round(time.perf_counter() - started, 1)
                        started = time.perf_counter()
                    fanned = (parts or {}).get(stage.name)
                    run_step(stage, pipeline, params, params_file, done, retrain_now, run_overrides, fanned)
                    seconds[stage.name] = round(time.perf_counter() - started, 1)
                finally:
                    PUBLISH.get(stage.name, lambda _: None)(params)
                if stage.name == "drift":
                    outcome["drift"] = read_json(params.drift.report)
        finally:
            pipeline.close()
        decision = read_json(params.promote.decision)
        outcome.update(metrics=headline(params), promotion=decision)
        publish_results(params, decision)
        logger.info("record: started")
        started = time.perf_counter()
        outcome["record"] = record_task(os.getcwd())
        done["record"], seconds["record"] = "ran", round(time.perf_counter() - started, 1)
        logger.info("record: ran in %.1f s", seconds["record"])
        if params.promote.git_commit:
            outcome["git_commit"] = git_task(os.getcwd(), commit_message(decision))
            logger.info("git: %s", outcome["git_commit"] or "nothing to commit")
    except Exception as exc:
        logger.error("run stopped: %s\n%s", exc, format_summary(outcome))
        raise
    create_markdown_artifact(
        key="run-summary", markdown=f"```\n{format_summary(outcome)}\n```\n", description="stages, metrics, decision"
    )
    return outcome


def check_pipeline(pipeline: DvcPipeline) -> None:
    """The registry and dvc.yaml (read by DVC's own parser) must hold the same stages in the same order."""
    ours, theirs = [stage.name for stage in STAGES], list(pipeline.specs)
    if ours != theirs:
        raise ParamsError(
            f"dvc.yaml's stages {theirs} differ from the flow's {ours}: the flow and `dvc repro` must "
            "run the same pipeline (vaeops/stages.py is the registry)"
        )


def quiet_task_states() -> None:
    """Drop Prefect's "Finished in state Completed()" line per task from the terminal: run_step already logs each
    stage's start and its end with the time taken. Failures, retries and every other task log line still show."""
    logging.getLogger("prefect.task_runs").addFilter(
        lambda record: not record.getMessage().startswith(("Finished in state Completed", "Finished in state Cached"))
    )


def main(argv: list[str] | None = None) -> int:
    """`python flows/retrain.py`: one run of the flow, then the summary on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    add_assignments_option(
        parser,
        "set a params.yaml key for this and later runs (written into the file, as `dvc exp run -S` does; "
        "repeatable), e.g. -S data.dataset=mnist -S data.source_dir=DIR",
    )
    parser.add_argument("--force-retrain", action="store_true", help="retrain even if nothing changed")
    parser.add_argument(
        "--accept-contract-change",
        action="store_true",
        help="let the gate promote a model with another input contract (image shape, likelihood); "
        "this run only, never written into params.yaml",
    )
    args = parser.parse_args(argv)
    try:  # a bad key or value is refused by name before Prefect starts
        overrides = parse_assignments(args.assignments)
        load_params(args.params, overrides)
    except VaeopsError as exc:
        print(f"retrain: error: {exc}", file=sys.stderr)
        return exc.exit_code
    quiet_task_states()
    lines: list[str] = []
    # Printed at exit, after Prefect has flushed its logs and stopped its temporary server (their exit handlers are
    # registered later, so they run first): the summary is the last thing on the terminal.
    atexit.register(lambda: print("\n" + "\n".join(lines), flush=True))
    state = retrain(args.params, overrides or None, args.force_retrain, args.accept_contract_change, return_state=True)
    if state.is_completed():
        lines.append(format_summary(state.result()))
        return 0
    error = state.result(raise_on_failure=False)
    lines.append(f"retrain FAILED: {error}")
    return error.exit_code if isinstance(error, VaeopsError) else 1


if __name__ == "__main__":
    sys.exit(main())
