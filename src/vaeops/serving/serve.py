"""HTTP service: a FastAPI app over the ONNX inference library: the JSON API, the Open Inference Protocol (/v2),
Prometheus metrics (/metrics), request limits, and 4xx answers for bad input."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import ipaddress
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from vaeops.core import __version__
from vaeops.core.errors import BatchTooLarge, InferenceFailed, InputError
from vaeops.core.params import ServeParams, load_params
from vaeops.serving import launch, oip, page
from vaeops.serving.inference import OnnxVAE
from vaeops.serving.metrics import MetricsMiddleware, ServiceMetrics
from vaeops.serving.middleware import BodyLimit
from vaeops.serving.reload import ModelHolder
from vaeops.serving.schemas import (
    DecodeRequest,
    EncodeRequest,
    EncodeResponse,
    ErrorResponse,
    GenerateRequest,
    ImagesResponse,
    ReconstructRequest,
)


class NumpyJSONResponse(Response):
    """JSON via orjson, which writes float32 arrays directly in their shortest exact form (about 20x faster than
    json.dumps on a Python list of floats, and half the bytes)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def _listed(array: np.ndarray) -> np.ndarray:
    """An output array in the form orjson serialises: C-contiguous float32."""
    return np.ascontiguousarray(array, dtype=np.float32)


def create_app(model_dir: str | Path, max_batch: int = 256, max_samples: int = 64, max_body_bytes: int = 8_000_000,
               threads: int = 0, providers: list[str] | None = None, report_dir: str | Path = "reports",
               max_explain_draws: int = 50_000, reload_seconds: float = 2.0, admin_token: str = "") -> FastAPI:
    """Load the exported model (sha256-checked) and build the app; a bad model folder fails here, not per request."""
    options = {"max_batch": max_batch, "max_samples": max_samples, "threads": threads, "providers": providers or None}
    holder = ModelHolder(model_dir, options)
    metrics = ServiceMetrics(holder.model.manifest.model_version)
    holder.model.on_run = metrics.observe_inference

    def swapped(model: OnnxVAE) -> None:
        model.on_run = metrics.observe_inference
        metrics.serving(model.manifest.model_version)

    holder.on_swap = swapped

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        """Poll the model folder every reload_seconds (0: never) and swap in a new champion."""
        async def poll() -> None:
            while True:
                await asyncio.sleep(reload_seconds)
                try:
                    await run_in_threadpool(holder.reload)
                except Exception as exc:  # noqa: BLE001 - the poll must outlive any one bad folder; /health shows it
                    holder.last_error = f"reload failed: {type(exc).__name__}: {exc}"

        task = asyncio.create_task(poll()) if reload_seconds > 0 else None
        yield
        if task is not None:
            task.cancel()

    # FastAPIOffline: /docs and /redoc load Swagger UI and ReDoc from the fastapi-offline package, not from a CDN.
    app = FastAPIOffline(lifespan=lifespan, title="vaeops", version=__version__, description="Variational autoencoder served from ONNX: encode, "
                  "reconstruct (posterior mean or Monte-Carlo samples) and generate, as JSON, and every exported graph "
                  "over the Open Inference Protocol (/v2, JSON or binary tensors).")
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: refused bodies are counted too
    app.state.holder = holder
    app.include_router(oip.build_router(holder))
    page.mount(app, holder, report_dir, max_explain_draws)
    errors = {413: {"model": ErrorResponse}, 422: {"model": ErrorResponse}}

    @app.exception_handler(InputError)
    async def input_error(request: Request, exc: InputError) -> Response:
        if request.url.path.startswith("/v2"):
            return oip.error_response(str(exc), oip.status_of(exc))
        return JSONResponse({"detail": str(exc)}, status_code=413 if isinstance(exc, BatchTooLarge) else 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith("/v2"):  # unknown /v2 routes and methods answer with the protocol's object
            return oip.error_response(str(exc.detail), exc.status_code)
        return await http_exception_handler(request, exc)

    @app.exception_handler(InferenceFailed)
    async def inference_failed(_: Request, exc: InferenceFailed) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=500)

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        """Prometheus metrics: requests by endpoint and status, latency, in-flight, inference time, model version."""
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    @app.get("/health")
    def health() -> dict[str, Any]:
        """Liveness and the model served: its version and folder, when it was loaded, the last reload error, providers."""
        return {"status": "ok", **holder.status(), "providers": holder.model.providers}

    @app.get("/health/live")
    def live() -> dict[str, bool]:
        """Liveness: the process answers."""
        return {"live": True}

    @app.get("/health/ready")
    def ready() -> dict[str, Any]:
        """Readiness: a model is loaded and serving (start-up fails without one)."""
        return {"ready": True, "model_version": holder.model.manifest.model_version}

    @app.post("/admin/reload", responses={403: {"model": ErrorResponse}, 409: {"model": ErrorResponse}})
    def reload(request: Request) -> Response:
        """Load the model folder again now (also when unchanged); from loopback, or with the admin token."""
        client = request.client.host if request.client else ""
        if not (is_loopback(client) or admin_token and request.headers.get("authorization") == f"Bearer {admin_token}"):
            return JSONResponse({"detail": "reload is allowed from loopback, or with the admin token"}, status_code=403)
        swapped_now = holder.reload(force=True)
        body = {"reloaded": swapped_now, **holder.status()}
        return JSONResponse(body, status_code=200 if holder.last_error is None else 409)

    @app.get("/metadata")
    def metadata() -> dict[str, Any]:
        """Model version, params and data hashes, shapes, likelihood, evaluation metrics, providers and limits."""
        return {**holder.model.metadata, "max_body_bytes": max_body_bytes}

    # Plain `def` endpoints: FastAPI runs them in its thread pool, and onnxruntime releases the GIL while it runs.
    @app.post("/encode", response_model=EncodeResponse, responses=errors)
    def encode(request: EncodeRequest) -> NumpyJSONResponse:
        """Posterior mean and log-variance of q(z|x) for each image."""
        model = holder.model  # this request finishes on this model, whatever a reload does meanwhile
        mu, logvar = model.encode(request.images)
        return NumpyJSONResponse({"model_version": model.manifest.model_version, "mu": _listed(mu), "logvar": _listed(logvar)})

    @app.post("/decode", response_model=ImagesResponse, responses=errors)
    def decode(request: DecodeRequest) -> NumpyJSONResponse:
        """Decoded images for latents z."""
        model = holder.model
        images = model.decode(request.z)
        return NumpyJSONResponse({"model_version": model.manifest.model_version, "shape": list(images.shape), "images": _listed(images)})

    @app.post("/reconstruct", response_model=ImagesResponse, responses=errors)
    def reconstruct(request: ReconstructRequest) -> NumpyJSONResponse:
        """Reconstruction from the posterior mean (mode=mean) or averaged over sampled latents (mode=sample)."""
        model = holder.model
        images = model.reconstruct(request.images, mode=request.mode, samples=request.samples, seed=request.seed)
        return NumpyJSONResponse({"model_version": model.manifest.model_version, "shape": list(images.shape), "images": _listed(images)})

    @app.post("/generate", response_model=ImagesResponse, responses=errors)
    def generate(request: GenerateRequest) -> NumpyJSONResponse:
        """New images decoded from z ~ N(0, I)."""
        model = holder.model
        images = model.generate(request.n, seed=request.seed)
        return NumpyJSONResponse({"model_version": model.manifest.model_version, "shape": list(images.shape), "images": _listed(images)})

    return app


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8 and ::1 (what the admin endpoint trusts without a token)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def app_from_params(section: ServeParams, model_dir: str | None = None, threads: int | None = None) -> FastAPI:
    """Build the app from the `serve` section of params.yaml (optionally another model folder or thread count)."""
    return create_app(model_dir or section.model_dir, max_batch=section.max_batch, max_samples=section.max_samples,
                      max_body_bytes=section.max_body_bytes, threads=section.threads if threads is None else threads,
                      providers=section.providers, report_dir=section.report_dir, max_explain_draws=section.max_explain_draws,
                      reload_seconds=section.reload_seconds, admin_token=section.admin_token)


def app_from_settings() -> FastAPI:
    """The app of one worker process, from the settings `vaeops serve` handed down (uvicorn's app factory)."""
    settings = launch.imported_settings()
    return app_from_params(ServeParams(**settings["serve"]), settings["model_dir"], settings["threads"])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `vaeops serve`: each overrides its serve.* parameter."""
    parser.add_argument("--host", type=launch.check_host, help="interface to bind (default: serve.host, 127.0.0.1)")
    parser.add_argument("--port", type=launch.check_port, help="port in [0, 65535] (default: serve.port; 0 picks a free one)")
    parser.add_argument("--workers", type=int, help="worker processes sharing the port (default: serve.workers)")
    parser.add_argument("--model-dir", help="exported model folder with a manifest.json (default: serve.model_dir)")


def run_cli(args: argparse.Namespace) -> None:
    """`vaeops serve`: load the exported model, bind the address, and serve until interrupted."""
    section = load_params(args.params).serve
    if args.workers is not None:
        section = dataclasses.replace(section, workers=args.workers)
        section.check()
    threads = launch.worker_threads(section.threads, section.workers)
    app = app_from_params(section, args.model_dir, threads)  # loads the model: a bad folder stops here, exit code 2
    host = args.host or section.host
    sock = launch.bind(host, section.port if args.port is None else args.port)
    bound = sock.getsockname()[1]
    model = app.state.holder.model
    launch.export_settings({"serve": dataclasses.asdict(section), "model_dir": str(model.model_dir), "threads": threads})
    shown = f"[{host}]" if ":" in host else host
    print(f"vaeops serve: model {model.manifest.model_version} from {model.model_dir} on {', '.join(model.providers)}, "
          f"{section.workers} worker(s) x {threads} onnxruntime thread(s)", flush=True)
    print(f"vaeops serve: listening on http://{shown}:{bound} (JSON API, /v2 Open Inference Protocol, /metrics, "
          "/docs)", flush=True)
    launch.serve_forever(app if section.workers == 1 else None, sock, section.workers)
