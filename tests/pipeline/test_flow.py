"""The retraining flow end to end: real Prefect (test harness), real DVC, the real stages, tiny digits data.

The tests share one temporary git copy of the repo and run in file order, as a team's runs would: first run,
unchanged rerun, lost outputs, forced retraining with a flaky DVC remote, a commit of the record, then a corrupted data
feed. The promotion gate's side of the lifecycle (challengers, contracts, rollback, drift) is in test_lifecycle.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from flow_helpers import TINY, run_flow, sh, tree

from helpers import REPO, git_copy_of_repo
from vaeops.core.errors import (
    DataError,
    DownloadError,
    ExportError,
    ParamsError,
    ValidationFailed,
)
from vaeops.core.params import load_params
from vaeops.data.idx import write_idx
from vaeops.lifecycle.record import set_params

STAGES = [
    "prepare",
    "validate",
    "drift",
    "train@vae",
    "train@plugin",
    "train@autoencoder",
    "evaluate",
    "export",
    "promote",
]


@pytest.fixture(scope="module")
def project(tmp_path_factory, prefect_api):
    """The repo as git sees it (tracked and new files, nothing ignored) in a fresh git repo, with tiny params."""
    copy = git_copy_of_repo(tmp_path_factory.mktemp("flow") / "repo", TINY)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(copy)
        yield copy


@pytest.fixture(scope="module")
def first_run(project):
    return run_flow()


@pytest.mark.slow
def test_full_run_promotes_the_first_model_and_leaves_dvc_clean(project, first_run):
    state, artifacts, _ = first_run
    assert state.is_completed(), state
    outcome = state.result()
    assert outcome["stages"] == {**{stage: "ran" for stage in STAGES}, "record": "ran"}
    assert outcome["promotion"]["promoted"] and outcome["promotion"]["previous_champion"] is None
    assert {"validation-summary", "metrics", "promotion-decision", "evaluation-report"} <= set(artifacts)
    assert "PASSED" in artifacts["validation-summary"].data
    assert '"vae"' in artifacts["metrics"].data and '"plugin"' in artifacts["metrics"].data
    assert "promoted" in artifacts["promotion-decision"].data
    assert (project / "champion" / "manifest.json").is_file()
    assert "up to date" in sh("dvc", "status", cwd=project)
    assert "promote" in (project / "dvc.lock").read_text()
    assert any((project / ".dvc-storage").rglob("*")), "dvc push sent nothing to the default remote"


@pytest.mark.slow
def test_second_run_with_nothing_changed_skips_every_stage(project, first_run):
    champion = tree(project / "champion")
    state, _, _ = run_flow()
    assert state.is_completed(), state
    # drift read no champion in the first run and reads the one it promoted now: it runs again, once, and finds none
    assert state.result()["stages"] == {
        **{stage: "skipped (cached)" for stage in STAGES},
        "drift": "ran",
        "record": "ran",
    }
    assert state.result()["drift"]["level"] == "ok" and state.result()["drift"]["comparable"]
    again, _, _ = run_flow()
    assert again.result()["stages"] == {**{stage: "skipped (cached)" for stage in STAGES}, "record": "ran"}
    import retrain

    assert "promotion (earlier run, same inputs): " in retrain.format_summary(state.result())
    assert tree(project / "champion") == champion
    assert "up to date" in sh("dvc", "status", cwd=project)


@pytest.mark.slow
def test_deleted_outputs_are_rebuilt_not_taken_from_the_cache(project, first_run):
    shutil.rmtree(project / "data" / "prepared")
    state, _, _ = run_flow()
    assert state.is_completed(), state
    stages = state.result()["stages"]
    # prepare runs again and writes the same bytes, so everything downstream stays cached.
    assert stages == {"prepare": "ran", **{stage: "skipped (cached)" for stage in STAGES[1:]}, "record": "ran"}
    assert "up to date" in sh("dvc", "status", cwd=project)


@pytest.mark.slow
def test_forced_retraining_with_a_flaky_remote_is_retried_and_succeeds(project, first_run, monkeypatch):
    import retrain

    calls = []
    real_record = retrain.dvc_record.record

    def flaky_remote(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OSError("DVC remote temporarily unreachable")
        return real_record(*args, **kwargs)

    monkeypatch.setattr(retrain.dvc_record, "record", flaky_remote)
    monkeypatch.setattr(retrain, "record_task", retrain.record_task.with_options(retry_delay_seconds=0))
    state, _, task_runs = run_flow(force_retrain=True)
    assert state.is_completed(), state
    stages = state.result()["stages"]
    assert stages["train@vae"] == stages["train@plugin"] == stages["train@autoencoder"] == "ran"
    assert stages["prepare"] == stages["validate"] == "skipped (cached)"
    assert len(calls) == 2
    record_run = next(run for run in task_runs if run.name.startswith("record"))
    assert record_run.run_count == 2 and record_run.state.is_completed()
    assert "up to date" in sh("dvc", "status", cwd=project)


def test_permanent_failures_are_not_retried():
    from prefect.states import Failed

    import retrain

    for error, retried in (
        (OSError("disk"), True),
        (ValidationFailed("bad data"), False),
        (DataError("no class 7"), False),
        (DownloadError("no mirror reachable"), True),
        (ExportError("parity"), False),
        (ParamsError("typo"), False),
    ):
        assert retrain.transient(None, None, Failed(data=error)) is retried


def test_a_run_can_commit_its_record_to_git(project, first_run):
    set_params(project / "params.yaml", {"promote.git_commit": True})
    state, _, _ = run_flow()
    assert state.is_completed(), state
    assert state.result()["git_commit"] is not None
    subject = sh("git", "log", "-1", "--format=%s", cwd=project).strip()
    assert subject.startswith("vaeops retrain ") and "champion vae@" in subject
    assert sh("git", "status", "--porcelain", "--", "dvc.lock", "params.yaml", "reports", cwd=project) == ""


@pytest.mark.slow
def test_corrupted_data_fails_at_validation_and_nothing_later_runs(project, first_run, tmp_path):
    champion = tree(project / "champion")
    feed = tmp_path / "feed"  # a broken scanner: MNIST-shaped files, every image blank
    feed.mkdir()
    for prefix, count in (("train", 60000), ("t10k", 10000)):
        write_idx(feed / f"{prefix}-images-idx3-ubyte.gz", np.zeros((count, 28, 28), np.uint8))
        write_idx(feed / f"{prefix}-labels-idx1-ubyte.gz", (np.arange(count) % 10).astype(np.uint8))
    state, artifacts, task_runs = run_flow(overrides={"data.dataset": "mnist", "data.source_dir": str(feed)})
    assert state.is_failed()
    with pytest.raises(ValidationFailed):
        state.result()
    assert sorted(run.name for run in task_runs) == ["prepare", "validate"]
    assert "FAILED" in artifacts["validation-summary"].data
    assert tree(project / "champion") == champion


def test_deployment_carries_the_cron_schedule_and_flow_parameters(prefect_api):
    import deploy
    import retrain

    deployment = deploy.nightly_deployment(overrides={"data.source_dir": "/data/incoming"})
    assert deployment.name == "nightly"
    assert [s.schedule.cron for s in deployment.schedules] == ["0 3 * * *"]
    assert deployment.parameters == {
        "params_file": "params.yaml",
        "overrides": {"data.source_dir": "/data/incoming"},
        "force_retrain": False,
        "accept_contract_change": False,
    }
    assert set(deployment.parameters) == set(retrain.retrain.parameters.properties)
    assert deployment.flow_name == retrain.retrain.name
    assert deployment.concurrency_limit == 1  # two runs must not share the checkout at once


def test_set_params_keeps_comments_and_refuses_unknown_keys(tmp_path):
    path = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", path)
    assert set_params(path, {"data.seed": 3})
    assert "data.seed" not in path.read_text() and "seed: 3" in path.read_text()
    assert "# digits (bundled, no network)" in path.read_text()
    assert not set_params(path, {"data.seed": 3})
    original = (REPO / "params.yaml").read_text().splitlines()
    changed = [(old, new) for old, new in zip(original, path.read_text().splitlines()) if old != new]
    assert len(changed) == 1 and changed[0][0].replace("seed: 0", "seed: 3") == changed[0][1]  # no other byte moves
    set_params(path, {"train.lr": 1e-6, "data.source_dir": None})  # PyYAML must read back a float and a null
    assert load_params(path).train.lr == 1e-6 and load_params(path).data.source_dir is None
    before = path.read_text()
    with pytest.raises(ParamsError):
        set_params(path, {"data.colour": "blue"})
    with pytest.raises(ParamsError):
        set_params(path, {"data.dataset": "cifar"})
    assert path.read_text() == before


def test_dvc_says_which_stage_is_stale_and_records_one_that_ran(tmp_path, monkeypatch):
    from vaeops.lifecycle.pipeline import DvcPipeline

    monkeypatch.chdir(tmp_path)
    sh("git", "init", "-q", cwd=tmp_path)
    sh("dvc", "init", "-q", cwd=tmp_path)
    (tmp_path / "params.yaml").write_text("a: {x: 1, y: 2}\n")
    (tmp_path / "in.txt").write_text("one")
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  copy:\n    cmd: cp in.txt out.txt\n    deps: [in.txt]\n    params: [a.x]\n    outs: [out.txt]\n"
    )
    pipeline = DvcPipeline(tmp_path)
    assert list(pipeline.specs) == ["copy"] and pipeline.specs["copy"].params == ("a.x",)
    assert pipeline.stale("copy")  # never run
    (tmp_path / "out.txt").write_text("one")
    pipeline.record("copy")
    assert pipeline.stale("copy") == []
    (tmp_path / "params.yaml").write_text("a: {x: 1, y: 3}\n")  # a key the stage does not list
    assert pipeline.stale("copy") == []
    (tmp_path / "params.yaml").write_text("a: {x: 5, y: 3}\n")
    assert "a.x" in " ".join(pipeline.stale("copy"))
    (tmp_path / "params.yaml").write_text("a: {x: 1, y: 3}\n")
    (tmp_path / "in.txt").write_text("two")
    assert "in.txt" in " ".join(pipeline.stale("copy"))
    (tmp_path / "in.txt").write_text("one")
    (tmp_path / "out.txt").unlink()
    assert "deleted" in " ".join(pipeline.stale("copy"))


def test_the_flow_runs_exactly_the_stages_of_dvc_yaml(dvc_definition):
    import retrain
    from vaeops.lifecycle.pipeline import stage_specs

    specs = stage_specs(dvc_definition)
    assert list(specs) == [stage.name for stage in retrain.STAGES]  # the same stages, in order
    params = load_params(REPO / "params.yaml")
    for spec in specs.values():  # every params key dvc.yaml names is a key of the typed params
        for key in spec.params:
            params.value(key)


def test_dvc_runs_the_stages_in_the_registry_order(dvc_definition):
    """DVC's own graph: no stage depends on one the registry (and so the flow) runs later; drift gates training."""
    from dvc.repo import Repo

    from vaeops.stages import STAGES

    order = [stage.name for stage in STAGES]
    with Repo(str(dvc_definition)) as repo:
        edges = [(a.name, b.name) for a, b in repo.index.graph.edges]  # (dependent, dependency)
    assert edges and all(order.index(dependency) < order.index(dependent) for dependent, dependency in edges)
    assert ("train@vae", "drift") in edges


def test_the_flow_refuses_a_bad_assignment_by_name_before_prefect_starts(tmp_path):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    before = (tmp_path / "params.yaml").read_bytes()
    for assignment, message in (
        ("train.epoch=3", "the 'train' section has no key 'epoch'"),
        ("train.epochs=0", "train.epochs: Input should be greater than or equal to 1"),
    ):
        result = subprocess.run(
            [sys.executable, str(REPO / "flows" / "retrain.py"), "-S", assignment],
            cwd=tmp_path,
            env={**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 2 and message in result.stderr, result.stderr[-2000:]
        assert "Starting temporary server" not in result.stdout + result.stderr
    assert (tmp_path / "params.yaml").read_bytes() == before
