"""The Open Inference Protocol routes (/v2): HTTP only; the data plane does the work, `oip` the wire format."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from vaeops.serving.dataplane import DataPlane
from vaeops.serving.oip import HEADER_LENGTH


def build_router(plane: DataPlane) -> APIRouter:
    """The /v2 routes for the served model."""
    router = APIRouter(prefix="/v2", tags=["Open Inference Protocol"])

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

    @router.get("/models/{name}")
    @router.get("/models/{name}/versions/{model_version}")
    def metadata(name: str, model_version: str | None = None) -> dict[str, Any]:
        """Model metadata: tensor names, datatypes and shapes of one exported graph."""
        return plane.graph_metadata(name, model_version)

    @router.get("/models/{name}/ready")
    @router.get("/models/{name}/versions/{model_version}/ready")
    def model_ready(name: str, model_version: str | None = None) -> dict[str, Any]:
        """Model readiness."""
        return plane.graph_ready(name, model_version)

    @router.post("/models/{name}/infer")
    @router.post("/models/{name}/versions/{model_version}/infer")
    async def infer(name: str, request: Request, model_version: str | None = None) -> Response:
        """Run one graph: JSON tensors, or the binary tensor data extension (Inference-Header-Content-Length)."""
        body = await request.body()  # read on the loop; the inference itself runs in the thread pool
        return await run_in_threadpool(plane.infer, name, model_version, body, request.headers.get(HEADER_LENGTH))

    return router
