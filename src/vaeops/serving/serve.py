"""HTTP service: a FastAPI app whose routes only speak HTTP over one data plane: the JSON API, the Open Inference
Protocol (/v2), the page, Prometheus metrics (/metrics), request limits, and one handler that maps every error."""

from __future__ import annotations

import argparse
import asyncio
import gc
import hmac
import ipaddress
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline

from vaeops.core import __version__
from vaeops.core.params import ServeParams, load_params
from vaeops.serving import contract, errors, launch, page, v2
from vaeops.serving.dataplane import DataPlane
from vaeops.serving.metrics import MetricsMiddleware
from vaeops.serving.middleware import BodyLimit
from vaeops.serving.schemas import (
    DecodeRequest,
    EncodeRequest,
    EncodeResponse,
    ErrorResponse,
    GenerateRequest,
    ImagesResponse,
    NumpyJSONResponse,
    ReconstructRequest,
)

DESCRIPTION = (
    "Variational autoencoder served from ONNX: encode, reconstruct (posterior mean or Monte-Carlo samples) and "
    "generate, as JSON, and every exported graph over the Open Inference Protocol (/v2, JSON or binary "
    "tensors)."
)


def create_app(params: ServeParams, threads: int | None = None) -> FastAPI:
    """Load the served model (sha256-checked) into the data plane and build the app over it; a bad model folder fails
    here, not per request."""
    plane = DataPlane(params, threads)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        """Poll the model folder every reload_seconds (0: never) for a new champion, start gRPC when asked, freeze
        the start-up objects; at shutdown stop them and the model threads."""

        async def poll() -> None:
            while True:
                await asyncio.sleep(params.reload_seconds)
                try:
                    await run_in_threadpool(plane.holder.reload)
                except Exception as exc:  # noqa: BLE001 - the poll must outlive any one bad folder; /health shows it
                    plane.holder.last_error = f"reload failed: {type(exc).__name__}: {exc}"

        task = asyncio.create_task(poll()) if params.reload_seconds > 0 else None
        rpc = None
        if params.grpc_port is not None:  # the OIP over gRPC, on this loop and this data plane
            from vaeops.serving import grpc_oip  # grpcio only where gRPC is asked for

            rpc, port = await grpc_oip.start(plane, params.host, params.grpc_port)
            print(f"vaeops serve: gRPC (Open Inference Protocol) on {params.host}:{port}", flush=True)
        # The app, the model and the gRPC server built above live as long as the process: frozen out of the
        # collector's sight, they no longer make every full collection walk them (tens of ms of stalled requests each
        # time, the p99).
        gc.freeze()
        yield
        if task is not None:
            task.cancel()
        if rpc is not None:
            await rpc.stop(grace=1.0)
        plane.close()

    # FastAPIOffline: /docs and /redoc load Swagger UI and ReDoc from the fastapi-offline package, not from a CDN.
    app = FastAPIOffline(lifespan=lifespan, title="vaeops", version=__version__, description=DESCRIPTION)
    app.add_middleware(BodyLimit, max_bytes=params.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=plane.metrics)  # outermost: refused bodies are counted too
    app.state.plane = plane
    errors.install(app)
    app.include_router(v2.build_router(plane))
    page.mount(app, plane)
    contract.install(app, plane)  # the schema states the served model's shapes and the limits
    bad = {413: {"model": ErrorResponse}, 422: {"model": ErrorResponse}}

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        """Prometheus metrics: requests by endpoint and status, latency, in-flight, inference time, model version."""
        body, content_type = plane.metrics.exposition()
        return Response(body, media_type=content_type)

    @app.get("/health")
    def health() -> dict[str, Any]:
        """Liveness and the model served: its version and folder, when it was loaded, the last reload error,
        providers."""
        return plane.health()

    @app.get("/health/live")
    def live() -> dict[str, bool]:
        """Liveness: the process answers."""
        return {"live": True}

    @app.get("/health/ready")
    def ready() -> dict[str, Any]:
        """Readiness: a model is loaded and serving (start-up fails without one)."""
        return {"ready": True, "model_version": plane.model.manifest.model_version}

    @app.post("/admin/reload", responses={403: {"model": ErrorResponse}, 409: {"model": ErrorResponse}})
    def reload(request: Request) -> Response:
        """Load the model folder again now (also when unchanged); from loopback, or with the admin token."""
        if not allowed(request, params.admin_token):
            return JSONResponse({"detail": "reload is allowed from loopback, or with the admin token"}, status_code=403)
        swapped, status = plane.reload()
        return JSONResponse(
            {"reloaded": swapped, **status}, status_code=200 if status["last_reload_error"] is None else 409
        )

    @app.get("/metadata")
    def metadata() -> dict[str, Any]:
        """Model version, params and data hashes, shapes, likelihood, evaluation metrics, providers and limits."""
        return plane.metadata()

    async def answer(work: Callable[..., dict[str, Any]], *args: Any) -> NumpyJSONResponse:
        """Run model work and render its JSON on the data plane's model threads: neither blocks the event loop."""
        return await plane.offload(lambda: NumpyJSONResponse(work(*args)))

    @app.post("/encode", response_model=EncodeResponse, responses=bad)
    async def encode(request: EncodeRequest) -> NumpyJSONResponse:
        """Posterior mean and log-variance of q(z|x) for each image."""
        return await answer(plane.encode, request.images)

    @app.post("/decode", response_model=ImagesResponse, responses=bad)
    async def decode(request: DecodeRequest) -> NumpyJSONResponse:
        """Decoded images for latents z."""
        return await answer(plane.decode, request.z)

    @app.post("/reconstruct", response_model=ImagesResponse, responses=bad)
    async def reconstruct(request: ReconstructRequest) -> NumpyJSONResponse:
        """The mean decode (mode=mean), one sampled decode (mode=sample), or the posterior predictive mean, the
        average of `samples` decoded draws (mode=predictive)."""
        return await answer(plane.reconstruct, request.images, request.mode, request.samples, request.seed)

    @app.post("/generate", response_model=ImagesResponse, responses=bad)
    async def generate(request: GenerateRequest) -> NumpyJSONResponse:
        """New images decoded from z ~ N(0, I)."""
        return await answer(plane.generate, request.n, request.seed)

    return app


def allowed(request: Request, token: str) -> bool:
    """The admin endpoint's rule: a loopback client, or the admin token (compared in constant time)."""
    client = request.client.host if request.client else ""
    given = request.headers.get("authorization", "")
    return is_loopback(client) or bool(token) and hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8 and ::1 (what the admin endpoint trusts without a token)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def app_from_settings() -> FastAPI:
    """The app of one worker process, from the settings `vaeops serve` handed down (uvicorn's app factory)."""
    settings = launch.imported_settings()
    launch.configure_logging()
    return create_app(ServeParams(**settings["serve"]), settings["threads"])


def run_cli(args: argparse.Namespace) -> None:
    """`vaeops serve`: load the exported model, bind the address, and serve until interrupted."""
    section = load_params(args.params, args.overrides).serve
    launch.configure_logging()
    threads = launch.worker_threads(section.threads, section.workers)
    app = create_app(section, threads)  # loads the model: a bad folder stops here, exit code 2
    sock = launch.bind(section.host, section.port)
    bound = sock.getsockname()[1]
    model = app.state.plane.model
    launch.export_settings({"serve": section.model_dump(), "threads": threads})
    shown = f"[{section.host}]" if ":" in section.host else section.host
    print(
        f"vaeops serve: model {model.manifest.model_version} from {model.model_dir} on {', '.join(model.providers)}, "
        f"{section.workers} worker(s) x {threads} onnxruntime thread(s)",
        flush=True,
    )
    print(
        f"vaeops serve: listening on http://{shown}:{bound} (JSON API, /v2 Open Inference Protocol, /metrics, /docs)",
        flush=True,
    )
    logging.getLogger("vaeops.serve").info("serving %s", model.manifest.model_version)
    launch.serve_forever(app if section.workers == 1 else None, sock, section.workers)
