"""The retraining lifecycle end to end: real Prefect, real DVC, a real `vaeops serve` on loopback under load.

One git copy of the repo lives through it, as a team's would: a first flow on digits makes champion v1 and the server
starts on it; a challenger trained on a new split, whose own-split NLL looks better, loses on the same images; an
MNIST-shaped feed is refused on its input contract, then promoted with --accept-contract-change; the server follows
it, and follows `vaeops champion rollback` back, without a failed request. Then the drift gate meets broken and
shifted feeds. The MNIST-shaped feeds are made from the bundled digits (no download).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pytest
from flow_helpers import TINY, digits_feed, run_flow, sh, tree

from helpers import git_copy_of_repo
from onnx_helpers import Server
from vaeops.core.errors import DataError
from vaeops.data.drift import DriftFailed
from vaeops.lifecycle.record import set_params

pytestmark = pytest.mark.slow
LATENTS = {"z": [[0.1 * i for i in range(8)]]}  # latent_dim 8 in every model here: valid under both input contracts


class Stream:
    """A steady client on one keep-alive connection: (wall-clock time, status, model version) per request."""

    def __init__(self, url: str):
        self.url, self.outcomes, self.stop_event = url, [], threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.stop_event.is_set():
                response = client.post("/decode", json=LATENTS)
                version = response.json().get("model_version", "") if response.status_code == 200 else response.text
                self.outcomes.append((time.time(), response.status_code, version))
                time.sleep(0.01)

    def wait_for(self, version: str, since: float, timeout: float = 30.0) -> float:
        """Seconds from `since` (a time.time()) until the first response from `version` after it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hits = [t for t, status, v in list(self.outcomes) if status == 200 and v == version and t >= since]
            if hits:
                return hits[0] - since
            time.sleep(0.05)
        raise AssertionError(f"the server never answered from {version}: last {self.outcomes[-3:]}")

    def failures(self) -> list[tuple[float, int, str]]:
        return [outcome for outcome in self.outcomes if outcome[1] != 200]

    def close(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def project(tmp_path_factory, prefect_api):
    copy = git_copy_of_repo(
        tmp_path_factory.mktemp("lifecycle") / "repo",
        {
            **TINY,
            "train.epochs": 10,
            "evaluate.models": ["vae"],
            "serve.reload_seconds": 0.5,
            "promote.nll_k": 16,
        },
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(copy)
        yield copy


@pytest.fixture(scope="module")
def feeds(tmp_path_factory):
    return tmp_path_factory.mktemp("feeds")


@pytest.fixture(scope="module")
def versions():
    return {}


@pytest.fixture(scope="module")
def service(project, versions):
    """`vaeops serve` on the champion of the first flow, with a client streaming requests at it from then on."""
    state, _, _ = run_flow()
    assert state.is_completed(), state
    versions["v1"] = state.result()["promotion"]["champion"]
    server = Server(["--params", "params.yaml", "-S", "serve.port=0"])
    stream = Stream(server.url())
    yield server, stream
    stream.close()
    server.stop()


def served(server: Server) -> dict:
    return httpx.get(f"{server.url()}/health").json()


def champion_version(project: Path) -> str:
    return json.loads((project / "champion" / "manifest.json").read_text())["model_version"]


def test_the_first_flow_makes_the_champion_the_server_starts_on(project, service, versions):
    server, stream = service
    stream.wait_for(versions["v1"], since=time.time() - 60)
    assert champion_version(project) == versions["v1"] == served(server)["model_version"]


def test_a_challenger_better_only_on_its_own_split_is_not_promoted(project, service, versions):
    champion = tree(project / "champion")
    # A new split of the digits whose 90 test images happen to be easy (seed 27 of 40 tried), and a model trained 7
    # epochs instead of 10: its own test NLL (about 26.0) is below the champion's stored one (26.3, measured on the
    # first split), yet on the same 90 images the champion scores about 25.7. Training on CPU is deterministic here.
    set_params("params.yaml", {"data.seed": 27, "data.test_fraction": 0.05, "train.epochs": 7})
    state, artifacts, _ = run_flow()
    assert state.is_completed(), state
    decision = state.result()["promotion"]
    assert not decision["promoted"]
    assert decision["challenger"]["nll"] < decision["previous_champion"]["nll"]  # the stored numbers mislead
    same = decision["same_data_comparison"]
    assert same["challenger_nll"] > same["champion_nll"] and same["gain_ci95_high"] < 0
    assert tree(project / "champion") == champion and served(service[0])["model_version"] == versions["v1"]
    assert "not promoted" in artifacts["promotion-decision"].data
    # The MNIST-shaped runs that follow: one epoch in batches of 256 images.
    set_params("params.yaml", {"data.seed": 0, "data.test_fraction": 0.2, "train.epochs": 1, "train.batch_size": 256})


def test_another_input_contract_is_refused_then_accepted_and_the_server_follows(project, service, feeds, versions):
    server, stream = service
    feed = digits_feed(feeds / "mnist")
    state, _, _ = run_flow(overrides={"data.dataset": "mnist", "data.source_dir": str(feed)})
    assert state.is_completed(), state
    outcome = state.result()
    assert not outcome["drift"]["comparable"]  # another image shape: the gate, not drift, decides
    assert not outcome["promotion"]["promoted"]
    assert any(
        "input contract changes (image_shape [8, 8] -> [28, 28]" in r and r.startswith("fail")
        for r in outcome["promotion"]["reasons"]
    )
    assert champion_version(project) == versions["v1"]

    state, _, _ = run_flow(
        overrides={"data.dataset": "mnist", "data.source_dir": str(feed)}, accept_contract_change=True
    )
    assert state.is_completed(), state
    outcome = state.result()
    assert outcome["stages"]["promote"] == "ran" and outcome["stages"]["train@vae"] == "skipped (cached)"
    assert outcome["promotion"]["promoted"]
    versions["v2"] = outcome["promotion"]["champion"]
    installed = json.loads((project / "champion" / "install.json").read_text())
    assert installed["contract_change_accepted"] and installed["previous_version"] == versions["v1"]
    before = len(stream.outcomes)
    versions["reload_seconds"] = stream.wait_for(
        versions["v2"], since=(project / "champion" / "install.json").stat().st_mtime
    )
    health = served(server)
    assert health["model_version"] == versions["v2"] and health["last_reload_error"] is None
    assert not stream.failures()
    versions["served_by_then"] = len(stream.outcomes)
    print(
        f"switched to {versions['v2']} {versions['reload_seconds']:.2f} s after the champion was installed; "
        f"{versions['served_by_then'] - before} requests answered while the flow's record step ran and the "
        f"switch happened"
    )
    assert "up to date" in sh("dvc", "status", cwd=project)


def test_rollback_puts_the_server_back_on_the_previous_champion(project, service, versions):
    server, stream = service
    said = sh("vaeops", "champion", "rollback", cwd=project)
    assert f"champion: {versions['v1']} (was {versions['v2']})" in said
    swapped = (project / "champion" / "install.json").stat().st_mtime
    seconds = stream.wait_for(versions["v1"], since=swapped)
    assert served(server)["model_version"] == versions["v1"] and not stream.failures()
    listing = sh("vaeops", "champion", "list", cwd=project)
    assert "rollback" in listing and f"champion: {versions['v1']}" in listing
    print(f"rolled back to {versions['v1']} in {seconds:.2f} s; {len(stream.outcomes)} requests so far, none failed")


def test_the_drift_gate_stops_broken_feeds_and_lets_a_mild_shift_train(project, service, feeds, versions):
    server, stream = service
    asked = time.time()
    sh("vaeops", "champion", "rollback", versions["v2"], cwd=project)  # the MNIST-shaped champion again
    stream.wait_for(versions["v2"], since=asked)

    state, _, task_runs = run_flow(
        overrides={
            "data.dataset": "mnist",
            "data.source_dir": str(digits_feed(feeds / "no-sevens", drop_class=7, seed=1)),
        }
    )
    assert state.is_failed()
    with pytest.raises(DataError, match=r"class\(es\) \[7\] have no images"):
        state.result()
    assert [(run.name, run.run_count) for run in task_runs] == [("prepare", 1)]  # a data fault is not retried

    state, artifacts, task_runs = run_flow(
        overrides={"data.dataset": "mnist", "data.source_dir": str(digits_feed(feeds / "dim", brightness=0.6, seed=1))}
    )
    assert state.is_failed()
    with pytest.raises(DriftFailed, match="drifted from the champion's"):
        state.result()
    assert sorted(run.name for run in task_runs) == ["drift", "prepare", "validate"]
    assert json.loads((project / "reports" / "drift.json").read_text())["level"] == "fail"

    state, _, _ = run_flow(
        overrides={
            "data.dataset": "mnist",
            "data.source_dir": str(digits_feed(feeds / "mild", brightness=0.97, seed=1)),
        }
    )
    assert state.is_completed(), state
    outcome = state.result()
    assert outcome["drift"]["level"] == "warn" and outcome["stages"]["train@vae"] == "ran"
    assert not stream.failures(), stream.failures()[:3]
    print(f"{len(stream.outcomes)} requests over the whole lifecycle, none failed")
