"""The Open Inference Protocol routes (/v2): HTTP only; the data plane does the work, `oip` the wire format."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from vaeops.serving.dataplane import DataPlane
from vaeops.serving.oip import HEADER_LENGTH


def build_router(plane: DataPlane) -> APIRouter:
    """The /v2 routes for the served model."""
    router = APIRouter(prefix="/v2", tags=["Open Inference Protocol"])

    # Inference first: FastAPI tries the routes in order, and these carry nearly every request.
    @router.post("/models/{name}/infer")
    async def infer(name: str, request: Request) -> Response:
        """Run one graph: JSON tensors, or the binary tensor data extension (Inference-Header-Content-Length)."""
        return await run_infer(name, None, request)

    @router.post("/models/{name}/versions/{model_version}/infer")
    async def version_infer(name: str, model_version: str, request: Request) -> Response:
        """Run one graph of a named version."""
        return await run_infer(name, model_version, request)

    @router.get("")
    def server_metadata() -> dict[str, Any]:
        """Server name, version and protocol extensions."""
        return plane.server_metadata()

    @router.get("/health/live")
    def live() -> dict[str, bool]:
        """Liveness: the process answers."""
        return {"live": True}

    @router.get("/health/ready")
    def ready() -> dict[str, bool]:
        """Readiness: the model is loaded (it is, or the server would not have started)."""
        return {"ready": True}

    # Triton's extensions that tritonclient calls; /models/stats before /models/{name}, which would take "stats"
    @router.get("/models/stats")
    def all_statistics() -> dict[str, Any]:
        """Inference statistics of every graph (Triton's statistics extension)."""
        return plane.statistics(None, None)

    @router.get("/models/{name}/stats")
    def statistics(name: str) -> dict[str, Any]:
        """Inference statistics of one graph: successful and failed requests, their cumulative time."""
        return plane.statistics(name, None)

    @router.get("/models/{name}/versions/{model_version}/stats")
    def version_statistics(name: str, model_version: str) -> dict[str, Any]:
        """Inference statistics of one graph in a named version."""
        return plane.statistics(name, model_version)

    @router.get("/models/{name}/config")
    def config(name: str) -> dict[str, Any]:
        """Triton's model configuration of one graph, as `vaeops triton-repo` writes it in config.pbtxt."""
        return plane.graph_config(name, None)

    @router.get("/models/{name}/versions/{model_version}/config")
    def version_config(name: str, model_version: str) -> dict[str, Any]:
        """Triton's model configuration of one graph in a named version."""
        return plane.graph_config(name, model_version)

    @router.post("/repository/index")
    def repository_index() -> list[dict[str, str]]:
        """The served graphs and their state (Triton's model repository extension, read only)."""
        return plane.repository_index()

    @router.get("/models/{name}")
    def metadata(name: str) -> dict[str, Any]:
        """Model metadata: tensor names, datatypes and shapes of one exported graph."""
        return plane.graph_metadata(name, None)

    @router.get("/models/{name}/versions/{model_version}")
    def version_metadata(name: str, model_version: str) -> dict[str, Any]:
        """Model metadata of one graph in a named version (the served one)."""
        return plane.graph_metadata(name, model_version)

    @router.get("/models/{name}/ready")
    def model_ready(name: str) -> dict[str, Any]:
        """Model readiness."""
        return plane.graph_ready(name, None)

    @router.get("/models/{name}/versions/{model_version}/ready")
    def version_ready(name: str, model_version: str) -> dict[str, Any]:
        """Model readiness in a named version."""
        return plane.graph_ready(name, model_version)

    async def run_infer(name: str, model_version: str | None, request: Request) -> Response:
        body = await request.body()  # read on the loop; the inference itself runs on the data plane's model threads
        return await plane.offload(plane.infer, name, model_version, body, request.headers.get(HEADER_LENGTH))

    return router
