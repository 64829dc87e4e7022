"""Scaling out (docs/pipeline.md): trainings fanned out on a real Dask LocalCluster through prefect-dask, and a sweep
on DVC's experiment queue.

One flow run with `orchestrate.runner: dask` (2 worker processes, 1 thread each) trains 3 variants x 2 seeds; the same
trainings run one after another in this process (the `local` runner's code path) in a second folder, and every file of
models/ must be equal byte for byte. A second flow run, on the local runner with nothing changed, takes every training
from the cache the Dask run left. On that run, committed, two queued experiments run by two queue workers at once.
"""

from __future__ import annotations

import json
import os
import shutil
import time

import numpy as np
import pytest
from flow_helpers import TINY, run_flow, sh, tree

from helpers import git_copy_of_repo
from vaeops.core.errors import DataError
from vaeops.core.params import load_params
from vaeops.lifecycle.record import set_params
from vaeops.stages import BY_NAME, STAGES
from vaeops.training.train import train

TRAINS = [stage.name for stage in STAGES if stage.parts]
SEEDS = 2


@pytest.fixture(scope="module")
def project(tmp_path_factory, prefect_api):
    changes = {**TINY, "train.replicates": SEEDS, "orchestrate.runner": "dask", "orchestrate.workers": 2}
    copy = git_copy_of_repo(tmp_path_factory.mktemp("fanout") / "repo", changes)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(copy)
        yield copy


@pytest.fixture(scope="module")
def dask_run(project):
    return run_flow()


@pytest.mark.slow
def test_every_training_seed_runs_in_a_dask_worker_process(project, dask_run):
    state, _, _ = dask_run
    assert state.is_completed(), state
    outcome = state.result()
    assert all(outcome["stages"][name] == "ran" for name in TRAINS)
    parts = outcome["parts"]
    assert sorted(parts) == sorted(TRAINS)
    assert all([part["unit"] for part in parts[name]] == list(range(SEEDS)) for name in TRAINS)
    pids = {part["pid"] for name in TRAINS for part in parts[name]}
    assert len(pids) >= 2 and os.getpid() not in pids, pids  # worker processes, not the flow's
    assert {part["worker"] for name in TRAINS for part in parts[name]} <= {"0", "1"}
    import retrain

    assert "train@vae on Dask: 0 on worker" in retrain.format_summary(outcome)
    assert "up to date" in sh("dvc", "status", cwd=project)


@pytest.mark.slow
def test_the_workers_report_their_task_states_and_logs_to_the_flows_prefect_server(dask_run):
    from prefect import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterTaskRunId, TaskRunFilter, TaskRunFilterName

    outcome = dask_run[0].result()
    names = [f"{name}:{seed}" for name in TRAINS for seed in range(SEEDS)]
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(task_run_filter=TaskRunFilter(name=TaskRunFilterName(any_=names)))
        logs = client.read_logs(log_filter=LogFilter(task_run_id=LogFilterTaskRunId(any_=[run.id for run in runs])))
    assert sorted(run.name for run in runs) == sorted(names)
    assert all(run.state.is_completed() for run in runs)
    pids = {str(part["pid"]) for name in TRAINS for part in outcome["parts"][name]}
    assert {line.message.split("pid ")[1].split()[0] for line in logs if "pid " in line.message} == pids


@pytest.mark.slow
def test_the_dask_runs_checkpoints_equal_a_local_runs_bytes(project, dask_run, tmp_path, monkeypatch):
    local = tmp_path / "local"
    shutil.copytree(project / "data" / "prepared", local / "data" / "prepared")
    shutil.copy(project / "params.yaml", local / "params.yaml")
    monkeypatch.chdir(local)
    for name in TRAINS:  # what the local runner's stage task calls, in this one process
        train(load_params("params.yaml", BY_NAME[name].fixed))
    for variant in ("vae", "plugin", "autoencoder"):
        fanned, here = tree(project / "models" / variant), tree(local / "models" / variant)
        assert len(here) == 3 + 3 * SEEDS + 1  # best, last, train.json, each seed's three, the choice
        assert fanned == here, variant


@pytest.mark.slow
def test_a_local_run_after_a_dask_run_takes_the_trainings_from_the_cache(project, dask_run):
    set_params("params.yaml", {"orchestrate.runner": "local"})
    state, _, _ = run_flow()
    assert state.is_completed(), state
    assert all(state.result()["stages"][name] == "skipped (cached)" for name in TRAINS)
    assert "parts" not in state.result()
    assert "up to date" in sh("dvc", "status", cwd=project)


@pytest.mark.slow
def test_a_permanent_failure_in_a_worker_stops_the_fan_out_unretried(project, dask_run):
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import FlowRunSort

    import fanout

    path = project / "data" / "prepared" / "train.npz"
    saved = path.read_bytes()
    with np.load(path) as split:
        arrays = dict(split)
    arrays["images"][0, 0, 0] = np.nan
    try:
        np.savez(path, **arrays)
        with pytest.raises(DataError, match=r"train\.npz: pixel values outside \[0, 1\]"):
            fanout.fan_out(str(project), "params.yaml", ["train@vae"], {"orchestrate.runner": "dask"})
    finally:
        path.write_bytes(saved)
    with get_client(sync_client=True) as client:
        flows = FlowFilter(name=FlowFilterName(any_=["vaeops-parts"]))
        last = client.read_flow_runs(flow_filter=flows, sort=FlowRunSort.START_TIME_DESC, limit=1)[0]
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[last.id])))
    assert last.state.is_failed()
    assert sorted(run.name for run in runs) == [f"train@vae:{seed}" for seed in range(SEEDS)]
    assert all(run.run_count == 1 and run.state.is_failed() for run in runs), [(r.run_count, r.state) for r in runs]


EPOCHS = {"short": 1, "long": 3}


@pytest.mark.slow
def test_two_queued_experiments_run_at_once_and_compare_in_exp_show(project, dask_run):
    sh("git", "add", "-A", cwd=project)
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "baseline", cwd=project)
    lock = (project / "dvc.lock").read_text()
    for name, epochs in EPOCHS.items():  # one seed per variant: the sweep is over epochs
        sweep = ["-S", f"train.epochs={epochs}", "-S", "train.replicates=1"]
        sh("dvc", "exp", "run", "--queue", "-n", name, *sweep, cwd=project)
    sh("dvc", "queue", "start", "-j", "2", cwd=project)
    deadline = time.monotonic() + 400
    while any(state in (status := sh("dvc", "queue", "status", cwd=project)) for state in ("Queued", "Running")):
        assert time.monotonic() < deadline, status
        time.sleep(2)
    assert status.count("Success") == 2, status

    found = {}
    for commit in json.loads(sh("dvc", "exp", "show", "--json", cwd=project)):
        for experiment in commit.get("experiments") or []:
            data = experiment["revs"][0]["data"]
            epochs = data["params"]["params.yaml"]["data"]["train"]["epochs"]
            found[experiment["name"]] = (epochs, data["metrics"]["reports/headline.json"]["data"])
    assert {name: epochs for name, (epochs, _) in found.items()} == EPOCHS
    assert found["short"][1] != found["long"][1]  # each experiment trained and evaluated its own models
    assert (project / "dvc.lock").read_text() == lock  # the workspace is untouched until `dvc exp apply`
