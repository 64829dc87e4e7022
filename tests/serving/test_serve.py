"""The HTTP service: the real `vaeops serve` process on a loopback port, called over HTTP with good and bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from onnx_helpers import IMAGE_SHAPE, make_project
from vaeops.core.errors import ModelFileError
from vaeops.core.params import ServeParams
from vaeops.export.export import export
from vaeops.serving.serve import create_app

D = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
TOL = dict(rtol=1e-4, atol=1e-5)


@pytest.fixture
def images():
    return np.random.default_rng(2).random((4, *IMAGE_SHAPE), dtype=np.float32)


def torch_out(fn, *arrays):
    with torch.inference_mode():
        return fn(*(torch.from_numpy(np.asarray(a, dtype=np.float32)) for a in arrays))


def test_health_metadata_and_openapi(served):
    client, model, manifest = served
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["model_version"] == manifest["model_version"]
    assert health["providers"][-1] == "CPUExecutionProvider"
    meta = client.get("/metadata").json()
    for key in ("model_version", "params_sha256", "data_sha256", "latent_dim", "image_shape", "likelihood"):
        assert meta[key] == manifest[key]
    assert (meta["max_batch"], meta["max_samples"], meta["max_body_bytes"]) == (16, 8, 200_000)
    schema = client.get("/openapi.json").json()
    assert {"/health", "/metadata", "/encode", "/decode", "/reconstruct", "/generate"} <= set(schema["paths"])
    assert schema["components"]["schemas"]["ReconstructRequest"]["properties"]["mode"]["enum"] == [
        "mean",
        "sample",
        "predictive",
    ]


def test_reconstruct_encode_generate_match_pytorch(served, images):
    client, model, _ = served
    response = client.post("/reconstruct", json={"images": images.tolist()})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["shape"] == [4, *IMAGE_SHAPE]
    np.testing.assert_allclose(np.array(body["images"]).reshape(4, D), torch_out(model, images.reshape(4, D)), **TOL)
    single = client.post("/reconstruct", json={"images": images[0].ravel().tolist()}).json()
    assert single["shape"] == [D]
    encoded = client.post("/encode", json={"images": images.tolist()}).json()
    mu, logvar = torch_out(model.encode, images.reshape(4, D))
    np.testing.assert_allclose(encoded["mu"], mu, **TOL)
    np.testing.assert_allclose(encoded["logvar"], logvar, **TOL)
    z = np.random.default_rng(0).standard_normal((3, model.config.latent_dim), dtype=np.float32)
    generated = client.post("/generate", json={"n": 3, "seed": 0}).json()
    assert generated["shape"] == [3, *IMAGE_SHAPE]
    expected = torch_out(lambda t: model.pixel_mean(model.decode(t)), z).reshape(3, *IMAGE_SHAPE)
    np.testing.assert_allclose(generated["images"], expected, **TOL)
    decoded = client.post("/decode", json={"z": z.tolist()}).json()
    np.testing.assert_allclose(decoded["images"], expected, **TOL)


def test_sampled_reconstruction_is_seeded(served, images):
    client = served[0]
    request = {"images": images.tolist(), "mode": "predictive", "samples": 4, "seed": 11}
    first, again = client.post("/reconstruct", json=request).json(), client.post("/reconstruct", json=request).json()
    other = client.post("/reconstruct", json={**request, "seed": 12}).json()
    assert first["images"] == again["images"] and first["images"] != other["images"]
    values = np.array(first["images"])
    assert values.shape == (4, *IMAGE_SHAPE) and values.min() >= 0 and values.max() <= 1


GOOD = {"images": [[0.5] * D]}
BAD_REQUESTS = [
    ("wrong shape", "/reconstruct", {"images": [[0.5] * 7] * 7}, 422, "shape"),
    ("strings", "/reconstruct", {"images": [["0.5"] * D]}, 422, "real numbers"),
    ("null pixel", "/reconstruct", {"images": [[None] * D]}, 422, "real numbers"),
    ("ragged", "/encode", {"images": [[0.5] * D, [0.5] * 3]}, 422, "rectangular"),
    ("out of range", "/reconstruct", {"images": [[2.0] * D]}, 422, r"\[0, 1\]"),
    ("0-255 ints", "/reconstruct", {"images": [[255] * D]}, 422, "0-255"),
    ("empty batch", "/reconstruct", {"images": []}, 422, "empty batch"),
    ("empty rows", "/encode", {"images": [[]]}, 422, "empty batch"),
    ("empty latents", "/decode", {"z": []}, 422, "empty batch"),
    ("oversize batch", "/reconstruct", {"images": [[0.5] * D] * 17}, 413, "limit of 16"),
    ("unknown mode", "/reconstruct", {**GOOD, "mode": "median"}, 422, "mean|sample"),
    ("too many samples", "/reconstruct", {**GOOD, "mode": "predictive", "samples": 9}, 413, "samples"),
    ("zero samples", "/reconstruct", {**GOOD, "mode": "predictive", "samples": 0}, 422, "samples"),
    ("samples as text", "/reconstruct", {**GOOD, "mode": "predictive", "samples": "3"}, 422, "integer"),
    ("one sampled decode with samples", "/reconstruct", {**GOOD, "mode": "sample", "samples": 4}, 422, "predictive"),
    ("negative seed", "/reconstruct", {**GOOD, "mode": "sample", "seed": -1}, 422, "seed"),
    ("missing images", "/reconstruct", {"mode": "mean"}, 422, "images"),
    ("images not a list", "/encode", {"images": "abc"}, 422, "list"),
    ("generate zero", "/generate", {"n": 0}, 422, "n must be"),
    ("generate too many", "/generate", {"n": 17}, 413, "limit|16"),
    ("decode wrong width", "/decode", {"z": [[0.0] * 5]}, 422, "z has shape"),
]


@pytest.mark.parametrize("name, path, payload, status, message", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_bad_requests_get_4xx_with_a_message(served, name, path, payload, status, message):
    response = served[0].post(path, json=payload)
    assert response.status_code == status, response.text
    assert re.search(message, json.dumps(response.json()["detail"])), response.text


def test_nan_malformed_json_and_oversize_bodies(served):
    client = served[0]
    nan = client.post(
        "/reconstruct",
        content='{"images": [[' + ", ".join(["NaN"] * D) + "]]}",
        headers={"content-type": "application/json"},
    )
    assert nan.status_code == 422 and "NaN" in nan.json()["detail"]
    broken = client.post("/reconstruct", content=b'{"images": [[0.5, ', headers={"content-type": "application/json"})
    assert broken.status_code == 422
    big = client.post(
        "/reconstruct", content=b"[" + b"0.5, " * 50_000 + b"0.5]", headers={"content-type": "application/json"}
    )
    assert big.status_code == 413 and "limit of 200000" in big.json()["detail"]
    chunked = client.post(
        "/reconstruct", content=iter([b"0.5, " * 10_000] * 10), headers={"content-type": "application/json"}
    )
    assert chunked.status_code == 413
    assert client.get("/nowhere").status_code == 404
    assert client.get("/reconstruct").status_code == 405


def test_server_keeps_serving_after_bad_requests(served, images):
    client = served[0]
    for _, path, payload, _, _ in BAD_REQUESTS:
        assert 400 <= client.post(path, json=payload).status_code < 500
    response = client.post("/reconstruct", json={"images": images.tolist()})
    assert response.status_code == 200 and response.json()["shape"] == [4, *IMAGE_SHAPE]
    assert client.get("/health").json()["status"] == "ok"


def test_tampered_export_is_refused_at_startup(tmp_path):
    params, _ = make_project(tmp_path)
    export(params)
    path = tmp_path / "models" / "onnx" / "reconstruct_mean.onnx"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ModelFileError, match="reconstruct_mean.onnx does not match"):
        create_app(ServeParams(model_dir=str(tmp_path / "models" / "onnx")))
    result = subprocess.run(
        [sys.executable, "-m", "vaeops.cli", "serve", "--params", str(tmp_path / "params.yaml"), "-S", "serve.port=0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "does not match the export manifest" in result.stderr
