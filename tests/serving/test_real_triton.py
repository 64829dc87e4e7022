"""Conformance with the reference server: the repository `vaeops triton-repo` writes, served by a real tritonserver
(PyPI's nvidia-pytriton, in its own venv, `make test` installs it), and the same tritonclient requests sent to it and
to `vaeops serve` over HTTP JSON, HTTP binary and gRPC give the same outputs, names, shapes and datatypes."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http

from onnx_helpers import IMAGE_SHAPE, serving_with_grpc
from vaeops.serving.inference import GRAPHS
from vaeops.serving.triton import write_repository

VENV = Path(os.environ.get("VAEOPS_TRITON_VENV", Path(__file__).resolve().parents[2] / ".venv-triton"))
TWIN = Path(__file__).with_name("triton_twin") / "model.py"
LATENT_DIM = 3  # onnx_helpers.make_project's model
WHERE = "import pytriton, sysconfig; print(pytriton.__path__[0]); print(sysconfig.get_config_var('LIBDIR'))"
ONNXRUNTIME_MISSING = "unable to find backend library for backend 'onnxruntime'"


def triton_install() -> tuple[Path, dict[str, str]]:
    """The tritonserver binary and the environment it needs: its bundled libraries and the interpreter's libpython
    first on LD_LIBRARY_PATH (a system libpython3.11 can shadow the interpreter's and break the backend stub)."""
    python = VENV / "bin" / "python"
    if not (VENV / ".installed").is_file() or not python.is_file():
        pytest.skip(f"no tritonserver: {VENV} lacks nvidia-pytriton (`make test` installs it where PyPI has a wheel)")
    where = subprocess.run(
        [
            str(python),
            "-c",
            "import pytriton, sysconfig; print(pytriton.__path__[0]); print(sysconfig.get_config_var('LIBDIR'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    package, libdir = Path(where[0]), where[1]
    libraries = package.parent / "nvidia_pytriton.libs"
    env = {**os.environ, "LD_LIBRARY_PATH": f"{libraries}:{libdir}:{os.environ.get('LD_LIBRARY_PATH', '')}"}
    return package / "tritonserver", env


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


class Triton:
    """A real tritonserver on loopback ports, serving one model repository."""

    def __init__(self, repository: Path, backends: Path, log: Path):
        binary, env = triton_install()
        self.http, self.grpc, metrics = free_ports(3)
        self.log = log
        self.process = subprocess.Popen(
            [
                str(binary / "bin" / "tritonserver"),
                f"--model-repository={repository}",
                f"--backend-directory={backends}",
                "--http-address=127.0.0.1",
                f"--http-port={self.http}",
                "--grpc-address=127.0.0.1",
                f"--grpc-port={self.grpc}",
                f"--metrics-port={metrics}",
                "--allow-metrics=false",
                "--exit-on-error=false",
                "--strict-readiness=false",
            ],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + 120
        while True:
            assert self.process.poll() is None, log.read_text(errors="replace")[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{self.http}/v2/health/live", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.25)

    def index(self) -> list[dict]:
        return httpx.post(f"http://127.0.0.1:{self.http}/v2/repository/index", timeout=10).json()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture(scope="module")
def repository(serve_project, tmp_path_factory):
    """The repository `vaeops triton-repo` writes for the served export, and the tritonserver's backends."""
    _, params, _, _ = serve_project
    root = tmp_path_factory.mktemp("triton")
    write_repository(params.export.out_dir, root / "repo", params.serve.max_batch, params.serve.triton_queue_delay_us)
    binary, _ = triton_install()
    backends = root / "backends"
    shutil.copytree(binary / "backends", backends)
    stub = binary / "python_backend_stubs" / f"{sys.version_info.major}.{sys.version_info.minor}"
    shutil.copy(stub / "triton_python_backend_stub", backends / "python")
    return root


def test_the_config_as_written_is_accepted_by_tritons_parser(repository):
    server = Triton(repository / "repo", repository / "backends", repository / "as-written.log")
    try:
        index = {m["name"]: m for m in server.index()}
    finally:
        server.stop()
    assert set(index) == set(GRAPHS)
    for name, entry in index.items():  # parsed and auto-completed; the only complaint: no onnxruntime backend
        assert entry["state"] == "UNAVAILABLE" and ONNXRUNTIME_MISSING in entry["reason"], (name, entry)


@pytest.fixture(scope="module")
def triton_twin(repository):
    """The same repository with each graph on Triton's Python backend running the same model.onnx: READY."""
    twin = repository / "twin"
    shutil.copytree(repository / "repo", twin)
    for name in GRAPHS:
        config = twin / name / "config.pbtxt"
        text = config.read_text().replace('platform: "onnxruntime_onnx"', 'backend: "python"')
        text += f'parameters {{\n  key: "EXECUTION_ENV_PATH"\n  value: {{ string_value: "{VENV}" }}\n}}\n'
        config.write_text(text)
        for version in (p for p in (twin / name).iterdir() if p.is_dir()):
            shutil.copy(TWIN, version / "model.py")
    server = Triton(twin, repository / "backends", repository / "twin.log")
    try:
        states = {m["name"]: m["state"] for m in server.index()}
        assert states == dict.fromkeys(GRAPHS, "READY"), (repository / "twin.log").read_text(errors="replace")[-3000:]
        yield server
    finally:
        server.stop()


def call(module, url: str, graph: str, arrays: dict[str, np.ndarray], binary: bool):
    """One tritonclient request: the outputs, and the model metadata's tensors (name, datatype, shape)."""
    client = module.InferenceServerClient(url)
    meta = client.get_model_metadata(graph) if module is triton_http else client.get_model_metadata(graph, as_json=True)
    inputs = []
    for name, array in arrays.items():
        item = module.InferInput(name, list(array.shape), "FP32")
        item.set_data_from_numpy(array, **({"binary_data": binary} if module is triton_http else {}))
        inputs.append(item)
    names = [t["name"] for t in meta["outputs"]]
    wanted = [
        triton_http.InferRequestedOutput(n, binary_data=binary)
        if module is triton_http
        else triton_grpc.InferRequestedOutput(n)
        for n in names
    ]
    result = client.infer(graph, inputs, outputs=wanted)
    tensors = [(t["name"], t["datatype"], [int(d) for d in t["shape"]]) for t in meta["inputs"] + meta["outputs"]]
    return {n: result.as_numpy(n) for n in names}, tensors


@pytest.mark.parametrize("protocol", ["http-json", "http-binary", "grpc"])
def test_the_same_requests_give_the_same_answers_on_triton_and_vaeops(triton_twin, grpc_addresses, protocol):
    http_url, grpc_url = grpc_addresses
    module = triton_grpc if protocol == "grpc" else triton_http
    ours = grpc_url if protocol == "grpc" else http_url
    theirs = f"127.0.0.1:{triton_twin.grpc if protocol == 'grpc' else triton_twin.http}"
    rng = np.random.default_rng(11)
    x = rng.random((3, IMAGE_SHAPE[0] * IMAGE_SHAPE[1]), dtype=np.float32)
    z = rng.standard_normal((3, LATENT_DIM), dtype=np.float32)
    cases = {"encoder": {"x": x}, "decoder": {"z": z}, "reconstruct": {"x": x, "eps": z}, "reconstruct_mean": {"x": x}}
    for graph, arrays in cases.items():
        (got, tensors), (expected, expected_tensors) = (
            call(module, ours, graph, arrays, protocol == "http-binary"),
            call(module, theirs, graph, arrays, protocol == "http-binary"),
        )
        assert tensors == expected_tensors, graph  # names, datatypes, shapes (-1 for the batch)
        for name, value in expected.items():
            assert got[name].dtype == value.dtype and got[name].shape == value.shape
            np.testing.assert_array_equal(got[name], value, err_msg=f"{graph}.{name} over {protocol}")


def test_both_refuse_a_datatype_other_than_the_graphs(triton_twin, grpc_addresses):
    body = {"inputs": [{"name": "x", "shape": [1, 64], "datatype": "FP64", "data": [0.5] * 64}]}
    for base in (f"http://{grpc_addresses[0]}", f"http://127.0.0.1:{triton_twin.http}"):
        response = httpx.post(f"{base}/v2/models/encoder/infer", json=body, timeout=30)
        assert response.status_code == 400 and "FP64" in response.json()["error"], (base, response.text)


def test_a_request_naming_tritons_integral_version_is_answered_by_both(triton_twin, repository, serve_project):
    """vaeops serve knows the version folder of serve.triton_repo holding its graphs, and answers to it as Triton does,
    the champion's identity kept beside it in the metadata."""
    with serving_with_grpc(serve_project[0] / "params.yaml", f"serve.triton_repo={repository / 'repo'}") as (ours, _):
        x = np.full((1, IMAGE_SHAPE[0] * IMAGE_SHAPE[1]), 0.5, np.float32)
        answers = []
        for base in (ours, f"127.0.0.1:{triton_twin.http}"):
            client = triton_http.InferenceServerClient(base)
            item = triton_http.InferInput("x", list(x.shape), "FP32")
            item.set_data_from_numpy(x)
            answers.append(client.infer("encoder", [item], model_version="1").as_numpy("mu"))
            assert "1" in client.get_model_metadata("encoder", model_version="1")["versions"]
        np.testing.assert_array_equal(*answers)
        metadata = httpx.get(f"http://{ours}/v2/models/encoder").json()
        assert metadata["versions"] == [serve_project[3]["model_version"], "1"]
