"""The parts of a stage (each training seed) as Prefect tasks on the runner `orchestrate` names: here, or on Dask.

A part is a plain function of the params and one unit (vaeops.stages.Parts); any worker that has the package and sees
the checkout at the same path (the shared storage the parts write to: one machine's disk, or an NFS mount on a
cluster) can run it. It returns its small summary, with the process and host that ran it; its files go where the
stage's own run would put them, so the stage's join and `dvc commit` see the same bytes on either runner.
"""

from __future__ import annotations

import os
import socket
import sys
from contextlib import nullcontext
from typing import Any

import cloudpickle
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import wait

from vaeops.core.errors import (
    CheckpointError,
    DataError,
    DownloadError,
    ExportError,
    ParamsError,
    TrainingDiverged,
    ValidationFailed,
)
from vaeops.core.params import OrchestrateParams, load_params
from vaeops.lifecycle.pipeline import DvcPipeline
from vaeops.stages import STAGES, run_part, units

# Failures no retry can fix: bad params or data, a diverged run, a model that failed its export checks. A download
# that failed is a DataError too, but the network may be back on the next try.
PERMANENT = (ParamsError, DataError, ValidationFailed, TrainingDiverged, CheckpointError, ExportError)

# The tasks below travel to the workers by value: a worker needs the vaeops package, not this folder of scripts.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry condition: retry I/O and DVC-remote failures, never one that would repeat (see PERMANENT)."""
    return isinstance(state.data, DownloadError) or not isinstance(state.data, PERMANENT)


def worker_slot() -> tuple[str, int]:
    """This process's Dask worker name and its CUDA device index under train.device auto: a LocalCluster numbers its
    workers 0, 1, ... (one GPU each); elsewhere the worker's own CUDA_VISIBLE_DEVICES decides (index 0)."""
    try:
        from distributed import get_worker

        name = get_worker().name
    except (ImportError, ValueError):
        return "flow", 0
    return str(name), name if isinstance(name, int) else 0


@task(
    name="part",
    task_run_name="{stage}:{unit}",
    cache_policy=NO_CACHE,  # DVC decides what must run; a part only runs for a stage it found changed
    retries=1,
    retry_delay_seconds=10,
    retry_condition_fn=transient,
)
def part_task(root: str, params_file: str, stage: str, unit: int, overrides: dict[str, Any] | None) -> dict[str, Any]:
    """One part of a stage (one training seed) on whichever worker got it; returns its summary and where it ran."""
    worker, local_rank = worker_slot()
    get_run_logger().info("%s part %s: worker %s, pid %d on %s", stage, unit, worker, os.getpid(), socket.gethostname())
    summary = run_part(root, params_file, stage, unit, overrides, local_rank)
    return {**summary, "unit": unit, "pid": os.getpid(), "host": socket.gethostname(), "worker": worker}


@flow(name="vaeops-parts")
def run_parts(
    root: str, params_file: str, jobs: list[tuple[str, int]], overrides: dict[str, Any] | None, gpus: int
) -> dict[str, list[dict[str, Any]]]:
    """Submit every (stage, unit) at once to this flow's task runner, wait for all (no part is left running when one
    fails), and return each stage's part summaries in unit order; the first failure raises."""
    import dask

    with dask.annotate(resources={"GPU": 1}) if gpus else nullcontext():  # one training per GPU
        futures = [part_task.submit(root, params_file, stage, unit, overrides) for stage, unit in jobs]
    wait(futures)
    results: dict[str, list[dict[str, Any]]] = {}
    for (stage, _), future in zip(jobs, futures):
        results.setdefault(stage, []).append(future.result())
    return results


def task_runner(settings: OrchestrateParams, gpus: int) -> Any:
    """prefect-dask's DaskTaskRunner: on the scheduler at `address`, or on a LocalCluster of worker processes bound
    to loopback, one thread per task; torch's default thread count in a worker is its threads (Dask sets 1 else).
    The workers report to this flow's Prefect API (its temporary server too): task states and logs in one place."""
    from prefect import get_client
    from prefect_dask import DaskTaskRunner

    if settings.address:  # the cluster's workers are configured by whoever runs them (docs/pipeline.md)
        return DaskTaskRunner(address=settings.address)
    with get_client(sync_client=True) as client:
        api_url = str(client.api_url)
    threads = str(settings.threads_per_worker)
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={
            "n_workers": min(settings.workers, gpus) if gpus else settings.workers,
            "threads_per_worker": settings.threads_per_worker,
            "processes": True,
            "host": "127.0.0.1",
            "dashboard_address": None,
            "env": {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "PREFECT_API_URL": api_url},
            **({"resources": {"GPU": 1}} if gpus else {}),
        },
    )


def fan_out(
    root: str, params_file: str, stages: list[str], overrides: dict[str, Any] | None
) -> dict[str, list[dict[str, Any]]]:
    """Run every part of these stages on the `orchestrate` runner (dask) and return their summaries by stage."""
    params = load_params(params_file, overrides)
    jobs = [(name, unit) for name in stages for unit in units(name, params_file, overrides)]
    gpus = visible_gpus(params.train.device)
    runner = task_runner(params.orchestrate, gpus)
    return run_parts.with_options(task_runner=runner)(root, params_file, jobs, overrides, gpus)


def visible_gpus(device: str) -> int:
    """CUDA devices the trainings may use: none when train.device names the CPU or MPS."""
    if device in ("cpu", "mps"):
        return 0
    import torch

    return torch.cuda.device_count()


def read_by(keys: Any, overrides: dict[str, Any] | None) -> dict[str, Any]:
    """The run-only overrides (an accepted contract change) a stage reads, of the params `keys` dvc.yaml lists for it:
    they reach that stage and its cache key, but not params.yaml, and the other stages keep their cached results."""
    return {
        key: value
        for key, value in (overrides or {}).items()
        if any(key == name or key.startswith(name + ".") for name in keys)
    }


def fan_out_stale(
    pipeline: DvcPipeline, params_file: str, force_retrain: bool, overrides: dict[str, Any]
) -> dict[str, list[dict[str, Any]]]:
    """The parts of every stage that has them and must run (DVC finds it changed, or training is forced), run at once
    on Dask (orchestrate.runner: dask); unchanged stages keep their cached results."""
    stale = [
        stage.name
        for stage in STAGES
        if stage.parts and ((force_retrain and stage.command == "train") or pipeline.stale(stage.name))
    ]
    if not stale:
        return {}
    get_run_logger().info("fanning out the parts of %s on Dask", ", ".join(stale))
    keys = [key for name in stale for key in pipeline.specs[name].params]
    return fan_out(os.getcwd(), params_file, stale, read_by(keys, overrides) or None)


def where_ran(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Where each part ran, in unit order: its unit (the seed), the Dask worker, the process and host."""
    return [{key: part[key] for key in ("unit", "worker", "pid", "host")} for part in parts]
