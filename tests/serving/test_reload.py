"""The service follows the champion: a new model folder is swapped in under load with no failed request, a bad one
is refused while the old model keeps serving, and /admin/reload answers only loopback or the token."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml

from onnx_helpers import Server, make_checkpoint, make_project
from vaeops.core.fileio import atomic_directory
from vaeops.core.params import ServeParams, load_params
from vaeops.dataset.splits import manifest_sha256
from vaeops.export.export import export
from vaeops.serving.reload import INSTALL_RECORD, ModelHolder

REQUEST = {"images": [[0.5] * 64]}


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Two exports of different models with the same input contract, and one of another contract."""
    root = tmp_path_factory.mktemp("reload")
    params, _ = make_project(root)
    folders = {}
    for name, seed in (("first", 0), ("second", 5)):
        make_checkpoint(root / "models" / "vae" / "best.pt", manifest_sha256(root / "data" / "prepared"), seed=seed)
        export(params)
        folders[name] = root / f"export-{name}"
        shutil.copytree(root / "models" / "onnx", folders[name])
    other = tmp_path_factory.mktemp("other-contract")
    other_params, _ = make_project(other, likelihood="gaussian")
    export(other_params)
    folders["gaussian"] = other / "models" / "onnx"
    return root, folders


def install(source: Path, champion: Path, tamper: bool = False) -> None:
    """What the promotion gate does: replace the champion folder whole, in one atomic swap."""
    with atomic_directory(champion) as staging:
        shutil.copytree(source, staging, dirs_exist_ok=True)
        if tamper:
            graph = staging / "decoder.onnx"
            graph.write_bytes(graph.read_bytes()[:-8])


def version(folder: Path) -> str:
    return yaml.safe_load((folder / "manifest.json").read_text())["model_version"]


def test_holder_swaps_refuses_and_retries_only_on_change(exports, tmp_path):
    _, folders = exports
    champion = tmp_path / "champion"
    install(folders["first"], champion)
    holder = ModelHolder(champion, {"max_batch": 16})
    assert not holder.reload() and holder.model.manifest.model_version == version(folders["first"])
    install(folders["second"], champion, tamper=True)
    assert not holder.reload() and "decoder.onnx does not match" in holder.last_error
    assert holder.model.manifest.model_version == version(folders["first"])  # the old model keeps serving
    assert not holder.reload() and holder.refused is not None  # not retried until the folder changes
    install(folders["gaussian"], champion)
    assert not holder.reload() and "changes the input contract (likelihood bernoulli -> gaussian)" in holder.last_error
    install(folders["second"], champion)
    assert holder.reload() and holder.last_error is None
    assert holder.model.manifest.model_version == version(folders["second"])


def test_a_contract_change_is_followed_only_when_its_install_record_accepts_it_from_the_served_version(
    exports, tmp_path
):
    _, folders = exports
    champion = tmp_path / "champion"
    install(folders["first"], champion)
    holder = ModelHolder(champion, {"max_batch": 16})
    served = version(folders["first"])
    for record, followed in (
        ({"contract_change_accepted": True, "previous_version": "vae@someone-else"}, False),
        ({"contract_change_accepted": False, "previous_version": served}, False),
        ({"contract_change_accepted": True, "previous_version": served}, True),
    ):
        with atomic_directory(champion) as staging:
            shutil.copytree(folders["gaussian"], staging, dirs_exist_ok=True)
            (staging / INSTALL_RECORD).write_text(
                json.dumps(
                    {"installed_by": "promotion", "model_version": "vae@new", "contract_change": "likelihood", **record}
                )
            )
        assert holder.reload() is followed, holder.last_error
    assert holder.model.manifest.likelihood == "gaussian" and holder.last_error is None


def test_a_running_server_switches_under_load_with_no_failed_request(exports, tmp_path):
    root, folders = exports
    champion = tmp_path / "champion"
    install(folders["first"], champion)
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["serve"].update(model_dir=str(champion), reload_seconds=0.2)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    load_params(tmp_path / "params.yaml")
    server = Server(["--params", str(tmp_path / "params.yaml"), "-S", "serve.port=0"])
    outcomes: list[tuple[int, str]] = []
    stop = threading.Event()

    def stream() -> None:  # a steady client on one keep-alive connection, bounded in time
        with httpx.Client(base_url=url, timeout=10) as client:
            deadline = time.monotonic() + 60
            while not stop.is_set() and time.monotonic() < deadline:
                response = client.post("/reconstruct", json=REQUEST)
                outcomes.append((response.status_code, response.json().get("model_version", "")))

    try:
        url = server.url()
        worker = threading.Thread(target=stream)
        worker.start()
        time.sleep(0.5)
        install(folders["second"], champion)
        swapped = time.monotonic()
        while httpx.get(f"{url}/health").json()["model_version"] != version(folders["second"]):
            assert time.monotonic() - swapped < 15, "the server did not pick up the new champion"
            time.sleep(0.05)
        reload_seconds = time.monotonic() - swapped
        served_during = len(outcomes)
        install(folders["first"], champion, tamper=True)  # a broken champion: refused, the second model stays
        time.sleep(1.0)
        health = httpx.get(f"{url}/health").json()
        assert health["model_version"] == version(folders["second"]) and "does not match" in health["last_reload_error"]
        forced = httpx.post(f"{url}/admin/reload")
        assert forced.status_code == 409 and "does not match" in forced.json()["last_reload_error"]
        assert httpx.get(f"{url}/health/ready").json()["ready"] is True
        stop.set()
        worker.join()
    finally:
        stop.set()
        server.stop()
    statuses = {status for status, _ in outcomes}
    versions = [v for _, v in outcomes]
    assert statuses == {200}, f"failed requests during the switch: {statuses}"
    assert versions[0] == version(folders["first"]) and versions[-1] == version(folders["second"])
    assert versions == sorted(versions, key=lambda v: v == version(folders["second"]))  # one switch, never back
    print(f"switched in {reload_seconds:.2f} s with {served_during} requests served, {len(outcomes)} in all")


def test_admin_reload_is_refused_from_elsewhere_without_the_token(exports, tmp_path):
    from fastapi.testclient import TestClient

    from vaeops.serving.serve import create_app

    _, folders = exports
    app = create_app(ServeParams(model_dir=str(folders["first"]), reload_seconds=0, admin_token="s3cret"))
    with TestClient(app, client=("203.0.113.9", 50000)) as client:  # a remote address, as the app sees it
        assert client.post("/admin/reload").status_code == 403
        allowed = client.post("/admin/reload", headers={"authorization": "Bearer s3cret"})
        assert allowed.status_code == 200 and allowed.json()["last_reload_error"] is None
