"""The OpenAPI schema is the contract: schemathesis generates requests from the real server's own schema (every
default check, positive and negative data, the stateful phase) and hypothesis sends arbitrary binary OIP bodies;
no 500, no contract failure, and the server keeps answering."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onnx_helpers import IMAGE_SHAPE

CONFIG = Path(__file__).with_name("schemathesis.toml")
EXAMPLES = 25  # schemathesis cases per operation and phase (about 20 s on 2 cores)
BINARY_EXAMPLES = 150  # hypothesis bodies per graph
D = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]


def test_the_schema_holds_the_served_models_shapes_limits_and_statuses(served):
    client, _, manifest = served
    schema = client.get("/openapi.json").json()
    encode = schema["components"]["schemas"]["EncodeRequest"]["properties"]["images"]["anyOf"]
    assert encode[0] == {
        "type": "array",
        "items": {"type": "number", "minimum": 0, "maximum": 1},
        "minItems": D,
        "maxItems": D,
    }
    assert encode[2]["maxItems"] == 16  # serve.max_batch of the test project
    infer = schema["paths"]["/v2/models/{name}/versions/{model_version}/infer"]["post"]
    names = {p["name"]: p["schema"].get("enum") for p in infer["parameters"]}
    assert names == {
        "name": ["encoder", "decoder", "reconstruct", "reconstruct_mean"],
        "model_version": [manifest["model_version"]],
    }
    assert set(infer["responses"]) == {"200", "400", "404", "413"}
    assert "HTTPValidationError" not in schema["components"]["schemas"]  # one error body per protocol
    refused = client.post("/generate", json={"n": "three"})
    assert refused.status_code == 422 and refused.json() == {"detail": "n: Input should be a valid integer"}


def test_schemathesis_finds_no_500_and_no_contract_failure(served, tmp_path):
    client, _, _ = served
    run = subprocess.run(
        [
            str(Path(sys.executable).with_name("st")),
            "--config-file",
            str(CONFIG),
            "run",
            str(client.base_url).rstrip("/") + "/openapi.json",
            "--checks",
            "all",
            "--mode",
            "all",
            "--max-examples",
            str(EXAMPLES),
            "--seed",
            "20261206",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--no-color",
            "--generation-database",
            "none",
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    summary = run.stdout[run.stdout.rfind("SUMMARY") :]
    assert run.returncode == 0, run.stdout[-6000:]
    assert "Stateful" in summary and " passed" in summary and "failed" not in summary.split("Test cases:")[-1]
    assert client.get("/health").json()["status"] == "ok"


LENGTHS = st.one_of(  # the header length: absent, any integer, or any short header value (a Unicode digit too)
    st.none(),
    st.integers(-5, 1000).map(str),
    st.text(alphabet=st.sampled_from("!09a-+ .x\u00b2\u00b3"), min_size=1, max_size=6).map(str.strip).filter(bool),
)


@st.composite
def oip_headers(draw) -> bytes:
    """An inference request header: often well formed, with shapes, datatypes, sizes and flags drawn at random."""
    tensor = {
        "name": draw(st.sampled_from(["x", "z", "eps", "", "nosuch"])),
        "shape": draw(st.lists(st.integers(-1, 20), max_size=3)),
        "datatype": draw(st.sampled_from(["FP32", "FP64", "INT32", "BOOL", "BYTES", "fp32"])),
        "parameters": {"binary_data_size": draw(st.one_of(st.integers(-4, 300), st.booleans(), st.text(max_size=2)))},
    }
    body = {
        "inputs": [tensor],
        "parameters": {"binary_data_output": draw(st.one_of(st.booleans(), st.text(max_size=3)))},
    }
    return json.dumps(body).encode() if draw(st.booleans()) else draw(st.binary(max_size=200))


@settings(
    max_examples=BINARY_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    graph=st.sampled_from(["encoder", "decoder", "reconstruct"]),
    header=oip_headers(),
    payload=st.binary(max_size=600),
    length=LENGTHS,
    exact=st.booleans(),
)
def test_any_binary_oip_body_gets_a_4xx_or_an_answer_never_a_500(served, graph, header, payload, length, exact):
    client, _, _ = served
    headers = {"Content-Type": "application/octet-stream"}
    length = str(len(header)) if exact else length
    if length is not None:
        headers["Inference-Header-Content-Length"] = length.encode("utf-8")  # bytes: a Unicode digit as sent
    response = client.post(f"/v2/models/{graph}/infer", content=header + payload, headers=headers)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert isinstance(response.json()["error"], str)
    assert client.get("/v2/health/ready").json() == {"ready": True}
