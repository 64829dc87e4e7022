"""Fixtures of the serving tests: a real `vaeops serve` process on a loopback port, serving a tiny exported model."""

from __future__ import annotations

import httpx
import pytest

from onnx_helpers import Server, make_project, serving_with_grpc
from vaeops.export.export import export


@pytest.fixture(scope="package")
def serve_project(tmp_path_factory):
    """A tiny project with an exported model: (root, params, torch model, export manifest)."""
    root = tmp_path_factory.mktemp("serve")
    params, model = make_project(root)
    return root, params, model, export(params).model_dump(mode="json")


@pytest.fixture(scope="package")
def served(serve_project):
    """The real server on a free loopback port (max_batch 16, 200 kB bodies): (HTTP client, torch model, manifest)."""
    root, _, model, manifest = serve_project
    server = Server(["--params", str(root / "params.yaml"), "-S", "serve.port=0"])
    try:
        with httpx.Client(base_url=server.url(), timeout=30) as client:
            yield client, model, manifest
    finally:
        server.stop()


@pytest.fixture(scope="package")
def grpc_addresses(serve_project):
    """A second real server with the OIP over gRPC on a free port: (HTTP host:port, gRPC host:port)."""
    with serving_with_grpc(serve_project[0] / "params.yaml") as addresses:
        yield addresses
