"""The Open Inference Protocol on the real `vaeops serve`, called by tritonclient (the reference client) and raw
HTTP."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys

import httpx
import numpy as np
import pytest
import tritonclient.http as triton_http
from google.protobuf import json_format, text_format
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.grpc.model_config_pb2 import ModelConfig
from tritonclient.utils import InferenceServerException, triton_to_np_dtype

from onnx_helpers import IMAGE_SHAPE, Server, make_project
from vaeops.export.export import export
from vaeops.serving.inference import GRAPHS, load
from vaeops.serving.triton import write_repository

D = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
PARITY = dict(rtol=1e-4, atol=1e-5)  # export.rtol / export.atol of the project params
HEADER = "Inference-Header-Content-Length"


@pytest.fixture(scope="module")
def triton(served):
    client, _, manifest = served
    return triton_http.InferenceServerClient(str(client.base_url).removeprefix("http://").rstrip("/")), manifest


@pytest.fixture(scope="module")
def library(serve_project):
    """The inference library on the same export the server serves (the trusted reference)."""
    _, params, _, _ = serve_project
    return load(params.export.out_dir)


def test_metadata_satisfies_tritonclient(triton):
    client, manifest = triton
    assert client.is_server_live() and client.is_server_ready()
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    for graph in GRAPHS:
        assert client.is_model_ready(graph)
        meta = client.get_model_metadata(graph)
        assert meta["name"] == graph and meta["versions"] == [manifest["model_version"]]
        entry = manifest["graphs"][graph]
        assert [t["name"] for t in meta["inputs"]] == entry["inputs"]
        assert [t["name"] for t in meta["outputs"]] == entry["outputs"]
        for tensor in meta["inputs"] + meta["outputs"]:
            assert triton_to_np_dtype(tensor["datatype"]) == np.float32
            width = manifest["latent_dim"] if tensor["name"] in ("z", "eps", "mu", "logvar") else D
            assert tensor["shape"] == [-1, width]
    assert not client.is_model_ready("nope")


def infer(client, graph: str, arrays: dict[str, np.ndarray], binary: bool) -> dict[str, np.ndarray]:
    """One tritonclient inference call, the inputs and outputs as JSON or as binary tensors."""
    meta = client.get_model_metadata(graph)
    inputs = []
    for tensor in meta["inputs"]:
        item = triton_http.InferInput(tensor["name"], list(arrays[tensor["name"]].shape), tensor["datatype"])
        item.set_data_from_numpy(arrays[tensor["name"]], binary_data=binary)
        inputs.append(item)
    outputs = [triton_http.InferRequestedOutput(t["name"], binary_data=binary) for t in meta["outputs"]]
    result = client.infer(graph, inputs, outputs=outputs)
    return {t["name"]: result.as_numpy(t["name"]) for t in meta["outputs"]}


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_every_graph_through_tritonclient_matches_the_inference_library(triton, library, binary):
    client, manifest = triton
    rng = np.random.default_rng(4)
    x = rng.random((3, D), dtype=np.float32)
    z = rng.standard_normal((3, manifest["latent_dim"]), dtype=np.float32)
    eps = rng.standard_normal((3, manifest["latent_dim"]), dtype=np.float32)
    mu, logvar = library.encode(x)
    expected = {
        "encoder": ({"x": x}, {"mu": mu, "logvar": logvar}),
        "decoder": ({"z": z}, {"x_hat": library.decode(z).reshape(3, D)}),
        "reconstruct": ({"x": x, "eps": eps}, {"x_hat": library.decode(mu + np.exp(0.5 * logvar) * eps).reshape(3, D)}),
        "reconstruct_mean": ({"x": x}, {"x_hat": library.reconstruct(x)}),
    }
    for graph, (arrays, outputs) in expected.items():
        got = infer(client, graph, arrays, binary)
        assert set(got) == set(outputs)
        for name, value in outputs.items():
            np.testing.assert_allclose(got[name], value, **PARITY, err_msg=f"{graph}.{name}")


def test_all_outputs_come_back_binary_when_none_is_named(triton, library):
    client, _ = triton
    x = np.random.default_rng(5).random((2, D), dtype=np.float32)
    item = triton_http.InferInput("x", [2, D], "FP32")
    item.set_data_from_numpy(x, binary_data=True)
    result = client.infer("encoder", [item])  # tritonclient then asks for binary_data_output
    np.testing.assert_allclose(result.as_numpy("mu"), library.encode(x)[0], **PARITY)


def oip_body(inputs: list[dict], binary: bytes = b"", outputs: list | None = None) -> tuple[bytes, dict]:
    header = json.dumps({"inputs": inputs, **({"outputs": outputs} if outputs is not None else {})}).encode()
    return header + binary, ({HEADER: str(len(header))} if binary else {})


def x_input(rows: int = 1, **changes) -> dict:
    return {"name": "x", "shape": [rows, D], "datatype": "FP32", "data": [0.5] * (rows * D), **changes}


def binary_x(values: np.ndarray, size: int | None = None) -> tuple[bytes, dict]:
    raw = values.astype("<f4").tobytes()
    entry = {
        "name": "x",
        "shape": list(values.shape),
        "datatype": "FP32",
        "parameters": {"binary_data_size": len(raw) if size is None else size},
    }
    return oip_body([entry], raw)


BAD = [
    ("not json", "encoder", (b'{"inputs": [', {}), 400, "not valid JSON"),
    ("no inputs", "encoder", oip_body([]), 400, "non-empty 'inputs'"),
    (
        "wrong width",
        "encoder",
        oip_body([{**x_input(), "shape": [1, 7], "data": [0.5] * 7}]),
        400,
        r"expected \[N, 64\]",
    ),
    ("data count", "encoder", oip_body([x_input(data=[0.5] * 3)]), 400, "holds 3 values"),
    ("bytes datatype", "encoder", oip_body([x_input(datatype="BYTES")]), 400, "datatype 'BYTES'"),
    ("FP64 for FP32, as Triton", "encoder", oip_body([x_input(datatype="FP64")]), 400, "data-type is 'FP64'"),
    ("INT32 for FP32, as Triton", "encoder", oip_body([x_input(datatype="INT32", data=[0] * D)]), 400, "'INT32'"),
    ("strings as data", "encoder", oip_body([x_input(data=["a"] * D)]), 400, "not a list of FP32"),
    ("out of range", "encoder", oip_body([x_input(data=[2.0] * D)]), 400, r"\[0, 1\]"),
    ("NaN binary", "encoder", binary_x(np.full((1, D), np.nan)), 400, "NaN"),
    ("binary size mismatch", "encoder", binary_x(np.full((1, D), 0.5), size=12), 400, "binary_data_size"),
    ("oversize batch", "encoder", oip_body([x_input(rows=17)]), 400, "limit of 16"),  # 400, as Triton answers
    ("missing eps", "reconstruct", oip_body([x_input()]), 400, "takes input"),
    ("unknown output", "encoder", oip_body([x_input()], outputs=[{"name": "sigma"}]), 400, "unknown output"),
    ("unknown model", "nope", oip_body([x_input()]), 404, "unknown model"),
    ("empty batch", "encoder", oip_body([x_input(rows=0, data=[])]), 400, "empty batch"),
    # Triton refuses a non-boolean flag; a string "false" must not be read as true.
    (
        "string binary_data_output",
        "encoder",
        (json.dumps({"inputs": [x_input()], "parameters": {"binary_data_output": "false"}}).encode(), {}),
        400,
        "'binary_data_output' must be a JSON boolean",
    ),
    (
        "string binary_data",
        "encoder",
        oip_body([x_input()], outputs=[{"name": "mu", "parameters": {"binary_data": "no"}}]),
        400,
        "'binary_data' must be a JSON boolean",
    ),
    ("unicode digit length", "encoder", (oip_body([x_input()])[0], {HEADER: "²".encode()}), 400, HEADER),
]


@pytest.mark.parametrize("name, graph, request_body, status, message", BAD, ids=[b[0] for b in BAD])
def test_bad_oip_requests_get_4xx_error_objects(served, name, graph, request_body, status, message):
    body, headers = request_body
    response = served[0].post(f"/v2/models/{graph}/infer", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert re.search(message, response.json()["error"]), response.text


def test_oip_limits_and_unknown_routes_answer_with_error_objects(served):
    client = served[0]
    header = client.post("/v2/models/encoder/infer", content=b'{"inputs": []}', headers={HEADER: "999"})
    assert header.status_code == 400 and HEADER in header.json()["error"]
    extra = client.post("/v2/models/encoder/infer", content=oip_body([x_input()])[0] + b"junk", headers={HEADER: "10"})
    assert extra.status_code == 400 and "error" in extra.json()
    big = client.post("/v2/models/encoder/infer", content=b"0" * 300_000)
    assert big.status_code == 413 and "limit" in big.json()["error"]
    assert client.get("/v2/models/encoder/versions/999").status_code == 404
    assert "error" in client.get("/v2/nowhere").json()
    with pytest.raises(InferenceServerException, match="unknown model"):
        triton_http.InferenceServerClient(str(client.base_url).removeprefix("http://").rstrip("/")).get_model_metadata(
            "nope"
        )
    assert client.post("/v2/models/encoder/infer", content=oip_body([x_input()])[0]).status_code == 200


def scrape(client: httpx.Client) -> dict[tuple, float]:
    samples = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_show_real_requests(served):
    client, _, manifest = served
    ok = (
        "vaeops_http_requests_total",
        (("endpoint", "/v2/models/{name}/infer"), ("method", "POST"), ("status", "200")),
    )
    bad = (
        "vaeops_http_requests_total",
        (("endpoint", "/v2/models/{name}/infer"), ("method", "POST"), ("status", "400")),
    )
    runs = ("vaeops_inference_duration_seconds_count", (("graph", "encoder"),))
    before = scrape(client)
    for _ in range(3):
        assert client.post("/v2/models/encoder/infer", content=oip_body([x_input()])[0]).status_code == 200
    assert client.post("/v2/models/encoder/infer", content=b"{").status_code == 400
    after = scrape(client)
    assert after[ok] - before.get(ok, 0) == 3 and after[bad] - before.get(bad, 0) == 1
    assert after[runs] - before.get(runs, 0) == 3
    assert after[("vaeops_model_info", (("model_version", manifest["model_version"]),))] == 1
    assert after[("vaeops_http_requests_in_flight", ())] == 1  # the scrape itself
    latency = ("vaeops_http_request_duration_seconds_count", (("endpoint", "/v2/models/{name}/infer"),))
    assert after[latency] - before.get(latency, 0) == 4


@pytest.mark.slow
def test_two_workers_share_the_port_and_their_metrics_add_up(tmp_path):
    params, _ = make_project(tmp_path)
    export(params)
    server = Server(["--params", str(tmp_path / "params.yaml"), "-S", "serve.port=0", "-S", "serve.workers=2"])
    try:
        url = server.url()
        with httpx.Client(base_url=url, timeout=30) as client:
            for _ in range(20):  # a new connection each, so both workers take some
                assert (
                    httpx.post(f"{url}/v2/models/reconstruct_mean/infer", content=oip_body([x_input()])[0]).status_code
                    == 200
                )
            key = (
                "vaeops_http_requests_total",
                (("endpoint", "/v2/models/{name}/infer"), ("method", "POST"), ("status", "200")),
            )
            assert scrape(client)[key] == 20
    finally:
        server.stop()
    assert "2 worker(s)" in "".join(server.lines)


def run_serve(*args: str, params: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vaeops.cli", "serve", "--params", params, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["-S", "serve.port=99999"], "serve.port: Input should be less than or equal to 65535, got 99999"),
        (["-S", "serve.port=-1"], "serve.port: Input should be greater than or equal to 0, got -1"),
        (["-S", "serve.port=http"], "serve.port: Input should be a valid integer, got 'http'"),
        (["-S", "serve.host=no-such-host.invalid"], "cannot listen on no-such-host.invalid:0"),
        (["-S", "serve.prot=80"], "override 'serve.prot': the 'serve' section has no key 'prot'"),
    ],
)
def test_bad_port_and_host_are_refused_naming_the_key(serve_project, args, message):
    root = serve_project[0]  # an exported model: the host is checked by the bind, after the model loads
    result = run_serve("-S", "serve.port=0", *args, params=str(root / "params.yaml"))
    assert result.returncode == 2 and re.search(message, result.stderr), result.stderr


def test_a_taken_port_exits_2_naming_the_address(tmp_path):
    params, _ = make_project(tmp_path)
    export(params)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run_serve("-S", f"serve.port={port}", params=str(tmp_path / "params.yaml"))
    assert result.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in result.stderr, result.stderr


def test_tritonclient_reads_the_config_statistics_and_repository_index(triton, serve_project, served, tmp_path):
    client, manifest = triton
    _, params, _, _ = serve_project
    # the served configuration is the config.pbtxt `vaeops triton-repo` writes with this server's batch limit, both
    # read with Triton's own schema (json_format refuses any field the schema lacks)
    write_repository(
        params.export.out_dir, tmp_path / "repo", params.serve.max_batch, params.serve.triton_queue_delay_us
    )
    for graph in GRAPHS:
        written = text_format.Parse((tmp_path / "repo" / graph / "config.pbtxt").read_text(), ModelConfig())
        assert json_format.ParseDict(client.get_model_config(graph), ModelConfig()) == written
    with pytest.raises(InferenceServerException, match="unknown model"):
        client.get_model_config("nosuch")

    def counts(graph: str) -> tuple[int, int, int]:
        stats = client.get_inference_statistics(graph)["model_stats"][0]["inference_stats"]
        return stats["success"]["count"], stats["fail"]["count"], stats["success"]["ns"]

    before = counts("decoder")
    infer(client, "decoder", {"z": np.zeros((2, manifest["latent_dim"]), np.float32)}, binary=False)
    body, headers = oip_body([{"name": "z", "shape": [1, 2], "datatype": "FP32", "data": [0.0, 0.0]}])
    assert served[0].post("/v2/models/decoder/infer", content=body, headers=headers).status_code == 400
    after = counts("decoder")
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1) and after[2] > before[2]
    every = client.get_inference_statistics()["model_stats"]
    assert sorted(s["name"] for s in every) == sorted(GRAPHS)
    index = client.get_model_repository_index()
    assert sorted(m["name"] for m in index) == sorted(GRAPHS) and {m["state"] for m in index} == {"READY"}
    exposition = served[0].get("/metrics").text
    assert 'vaeops_oip_requests_total{graph="decoder",outcome="fail"}' in exposition


@pytest.fixture(scope="module")
def grpc_served(grpc_addresses):
    """tritonclient.grpc on the gRPC server, and an HTTP client on the same server."""
    import tritonclient.grpc as triton_grpc

    http_url, grpc_url = grpc_addresses
    with httpx.Client(base_url=f"http://{http_url}", timeout=30) as http:
        yield triton_grpc.InferenceServerClient(grpc_url), http


def test_grpc_speaks_the_protocol_on_the_same_data_plane(grpc_served, library, serve_project):
    import tritonclient.grpc as triton_grpc

    client, http = grpc_served
    manifest = serve_project[3]
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("decoder")
    meta = client.get_model_metadata("encoder", as_json=True)
    assert meta["name"] == "encoder" and meta["inputs"][0]["shape"] == ["-1", str(D)]
    rng = np.random.default_rng(8)
    x = rng.random((3, D), dtype=np.float32)
    eps = rng.standard_normal((3, manifest["latent_dim"]), dtype=np.float32)
    inputs = []
    for name, array in (("x", x), ("eps", eps)):
        item = triton_grpc.InferInput(name, list(array.shape), "FP32")
        item.set_data_from_numpy(array)
        inputs.append(item)
    result = client.infer("reconstruct", inputs)
    mu, logvar = library.encode(x)
    expected = library.decode(mu + np.exp(0.5 * logvar) * eps).reshape(3, D)
    np.testing.assert_allclose(result.as_numpy("x_hat"), expected, **PARITY)
    # the same answer as HTTP, to the bit: one data plane
    body, headers = oip_body(
        [
            x_input(3, data=x.ravel().tolist()),
            {"name": "eps", "shape": [3, manifest["latent_dim"]], "datatype": "FP32", "data": eps.ravel().tolist()},
        ]
    )
    over_http = http.post("/v2/models/reconstruct/infer", content=body, headers=headers).json()["outputs"][0]
    np.testing.assert_array_equal(result.as_numpy("x_hat").ravel(), np.asarray(over_http["data"], np.float32))
    config = client.get_model_config("encoder", as_json=True)["config"]
    assert config["platform"] == "onnxruntime_onnx" and config["max_batch_size"] == 16
    assert {m["name"] for m in client.get_model_repository_index(as_json=True)["models"]} == set(GRAPHS)
    stats = client.get_inference_statistics("reconstruct", as_json=True)["model_stats"][0]["inference_stats"]
    assert int(stats["success"]["count"]) >= 2  # gRPC and HTTP, counted alike
    for call, code in (
        (lambda: client.infer("nosuch", inputs), "StatusCode.NOT_FOUND"),
        (lambda: client.infer("reconstruct", inputs[:1]), "StatusCode.INVALID_ARGUMENT"),
        (lambda: client.infer("encoder", [big_x()]), "StatusCode.INVALID_ARGUMENT"),
    ):
        with pytest.raises(InferenceServerException) as refused:
            call()
        assert refused.value.status() == code, refused.value
    assert 'vaeops_oip_requests_total{graph="encoder",outcome="fail"}' in http.get("/metrics").text


def big_x():
    """An encoder input one row over the server's batch limit (16)."""
    import tritonclient.grpc as triton_grpc

    item = triton_grpc.InferInput("x", [17, D], "FP32")
    item.set_data_from_numpy(np.zeros((17, D), np.float32))
    return item
