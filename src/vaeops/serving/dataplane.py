"""The one data plane under every HTTP route: the served model, its limits and metrics, built from the serve params.

The JSON API, the Open Inference Protocol routes and the page only speak HTTP: each parses its request, hands the work
to a method here and returns the result. Every method blocks (onnxruntime, file reads), so none runs on the event
loop: model work runs on the plane's own `serve.concurrent_runs` threads (`offload`), the rest in the thread pool.
Each call takes the model once (`self.model`) and finishes on it: a reload in between never splits a request.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from fastapi.responses import Response

from vaeops.bundle import gallery
from vaeops.bundle.install import PLOT_PREFIX, read_installed_file
from vaeops.bundle.manifest import DECISION, METRICS, REPORT, read_listed_file
from vaeops.core import __version__
from vaeops.core.errors import ModelFileError, VaeopsError
from vaeops.core.params import ServeParams
from vaeops.serving import explain, oip, triton
from vaeops.serving.inference import OnnxVAE
from vaeops.serving.metrics import ServiceMetrics
from vaeops.serving.reload import ModelHolder


class ReportUnavailable(VaeopsError):
    """The evaluation report on disk is not readable text."""

    http_status = 503


def installed_json(model_dir: Path, name: str) -> dict[str, Any] | None:
    """A JSON object the champion's install record lists (metrics, promotion decision), checked against its sha256
    (a changed file is a ModelFileError, 503); None for a folder that does not list it (an export)."""
    data = read_installed_file(model_dir, name)
    if data is None:
        return None
    try:
        value = json.loads(data)
    except ValueError as exc:  # listed with this very sha256, so the install wrote it: a broken install
        raise ModelFileError(f"{model_dir / name} is not readable JSON: {exc}") from None
    return value if isinstance(value, dict) else None


def model_card(model: OnnxVAE) -> dict[str, Any]:
    """The served model: version, training data, headline metrics, and the promotion decision that installed it."""
    manifest = model.manifest
    metrics = installed_json(model.model_dir, METRICS) or {}
    keys = (
        "model_version",
        "epoch",
        "data_sha256",
        "params_sha256",
        "checkpoint_sha256",
        "likelihood",
        "image_shape",
        "latent_dim",
        "opset",
    )
    return {
        **manifest.model_dump(mode="json", include=set(keys)),
        # the champion's metrics.json, else the context the export stamped into the manifest
        "data": {
            key: metrics.get(key, manifest.metrics.get(key))
            for key in ("dataset", "split", "images", "pixels", "binarize")
        },
        "metrics": manifest.metrics,
        "models": metrics.get("models") or {},
        "promotion": installed_json(model.model_dir, DECISION),
    }


def listed(array: np.ndarray) -> np.ndarray:
    """An output array in the form orjson serialises: C-contiguous float32."""
    return np.ascontiguousarray(array, dtype=np.float32)


class DataPlane:
    """The model service every route calls: built once per process from the `serve` params."""

    def __init__(self, params: ServeParams, threads: int | None = None):
        self.params = params
        options = {
            "max_batch": params.max_batch,
            "max_samples": params.max_samples,
            "threads": params.threads if threads is None else threads,
            "providers": params.providers or None,
        }
        self.holder = ModelHolder(params.model_dir, options)
        self.metrics = ServiceMetrics(self.model.manifest.model_version)
        self.model.on_run = self.metrics.observe_inference
        self.holder.on_swap = self._swapped
        self.report_dir = Path(params.report_dir)
        self._galleries: dict[str, Any] = {}  # model version -> its gallery, read (and sha256-checked) once
        self._configs: dict[tuple[str, str], dict[str, Any]] = {}  # (model version, graph) -> Triton model config
        self._integral: dict[str, str | None] = {}  # served model version -> its Triton version folder, or None
        self._runs = ThreadPoolExecutor(params.concurrent_runs, thread_name_prefix="vaeops-run")

    async def offload(self, work: Callable[..., Any], *args: Any) -> Any:
        """Run blocking model work off the event loop on the model threads: concurrent_runs at once, the rest queue."""
        return await asyncio.get_running_loop().run_in_executor(self._runs, functools.partial(work, *args))

    def close(self) -> None:
        """Stop the model threads once the server stops (queued calls are cancelled)."""
        self._runs.shutdown(wait=False, cancel_futures=True)

    @property
    def model(self) -> OnnxVAE:
        """The model serving now."""
        return self.holder.model

    def _swapped(self, model: OnnxVAE) -> None:
        model.on_run = self.metrics.observe_inference
        self.metrics.serving(model.manifest.model_version)

    # JSON API
    def encode(self, images: Any) -> dict[str, Any]:
        """Posterior mean and log-variance of q(z|x) for each image."""
        model = self.model
        mu, logvar = model.encode(images)
        return {"model_version": model.manifest.model_version, "mu": listed(mu), "logvar": listed(logvar)}

    def _images(self, model: OnnxVAE, images: np.ndarray) -> dict[str, Any]:
        return {"model_version": model.manifest.model_version, "shape": list(images.shape), "images": listed(images)}

    def decode(self, z: Any) -> dict[str, Any]:
        """Decoded images for latents z."""
        model = self.model
        return self._images(model, model.decode(z))

    def reconstruct(self, images: Any, mode: str, samples: int, seed: int | None) -> dict[str, Any]:
        """Reconstructions from the posterior mean or averaged over sampled latents."""
        model = self.model
        return self._images(model, model.reconstruct(images, mode=mode, samples=samples, seed=seed))

    def generate(self, n: int, seed: int | None) -> dict[str, Any]:
        """New images decoded from z ~ N(0, I)."""
        model = self.model
        return self._images(model, model.generate(n, seed=seed))

    # Open Inference Protocol
    def server_metadata(self) -> dict[str, Any]:
        """Server name, version and protocol extensions."""
        extensions = ["binary_tensor_data", "model_configuration", "statistics", "model_repository"]
        return {"name": "vaeops", "version": __version__, "extensions": extensions}

    def graph_metadata(self, name: str, version: str | None) -> dict[str, Any]:
        """Tensor names, datatypes and shapes of one exported graph."""
        model = self.model
        integral = self.integral_version(model, version)
        return oip.model_metadata(model, oip.graph_of(model, name, version, integral), integral)

    def graph_ready(self, name: str, version: str | None) -> dict[str, Any]:
        """Readiness of one graph (every graph of a loaded model is ready)."""
        model = self.model
        return {"name": self.graph(model, name, version), "ready": True}

    def infer(self, name: str, version: str | None, body: bytes, header_length: str | None) -> Response:
        """One OIP inference request over HTTP, JSON or binary tensors."""
        model = self.model
        graph = self.graph(model, name, version)
        with self.counted(graph):
            header, arrays = oip.parse_request(body, header_length)
            binary = oip.requested_outputs(header, [o.name for o in model.sessions[graph].get_outputs()])
            oip.check_datatypes(graph, arrays)
            outputs = model.run_graph(graph, arrays)
        return oip.build_response(graph, model.manifest.model_version, header.get("id"), outputs, binary)

    def run_tensors(self, name: str, version: str | None, arrays: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
        """Run one graph on named input arrays (the gRPC front end): (graph, served version, outputs)."""
        model = self.model
        graph = self.graph(model, name, version)
        with self.counted(graph):
            oip.check_datatypes(graph, arrays)
            outputs = model.run_graph(graph, arrays)
        return graph, model.manifest.model_version, outputs

    def graph(self, model: OnnxVAE, name: str, version: str | None) -> str:
        """The graph a request names in a version this server answers to (its identity or Triton's integer)."""
        return oip.graph_of(model, name, version, self.integral_version(model, version))

    @contextmanager
    def counted(self, graph: str) -> Iterator[None]:
        """Count one OIP request of `graph` and its time for the statistics extension, answered or refused (an
        unknown model is resolved before, so it is no model's failure)."""
        started = time.perf_counter()
        try:
            yield
        except Exception:
            self.metrics.observe_oip(graph, False, time.perf_counter() - started)
            raise
        self.metrics.observe_oip(graph, True, time.perf_counter() - started)

    def integral_version(self, model: OnnxVAE, requested: str | None = None) -> str | None:
        """Triton's name for the served model: the version folder of serve.triton_repo holding these very graphs.
        Looked up once per model, and again only when a request names a version this server does not know yet (the
        repository may have been written since): the common request, naming no version, costs a dict lookup."""
        served = model.manifest.model_version
        known = self._integral.get(served)
        if served not in self._integral or requested not in (None, "", served, known):
            known = triton.repository_version(Path(self.params.triton_repo), model.manifest)
            self._integral = {served: known}
        return known

    def graph_config(self, name: str, version: str | None) -> dict[str, Any]:
        """Triton's model configuration of one graph (the content `vaeops triton-repo` writes as config.pbtxt), with
        the batch limit this server enforces."""
        model = self.model
        graph = self.graph(model, name, version)
        key = (model.manifest.model_version, graph)
        if key not in self._configs:
            proto = onnx.load_from_string(read_listed_file(model.model_dir, model.manifest.graphs[graph], graph))
            self._configs[key] = triton.model_config(
                graph, proto, self.params.max_batch, self.params.triton_queue_delay_us, model.manifest.model_version
            )
        return self._configs[key]

    def statistics(self, name: str | None, version: str | None) -> dict[str, Any]:
        """Triton's inference statistics of one graph, or of every graph, from the counters /metrics shows."""
        model = self.model
        graphs = [self.graph(model, name, version)] if name else list(model.sessions)
        return self.metrics.triton_statistics(graphs, model.manifest.model_version)

    def repository_index(self) -> list[dict[str, str]]:
        """Triton's repository index: every served graph, in the served version, READY."""
        model = self.model
        return [{"name": g, "version": model.manifest.model_version, "state": "READY"} for g in model.sessions]

    # the page
    def report(self) -> tuple[bytes, str] | None:
        """The evaluation report (Markdown bytes) and whose it is: the one shipped with the served model, checked
        against its install record, else serve.report_dir's (the latest evaluation); None when there is neither."""
        model = self.model
        shipped = read_installed_file(model.model_dir, REPORT)
        if shipped is not None:
            return shipped, f"the report shipped with the served model {model.manifest.model_version}"
        path = self.report_dir / REPORT
        if not path.is_file():
            return None
        try:
            return path.read_bytes(), (
                f"{path}, the latest evaluation: the served model {model.manifest.model_version} ships no report"
            )
        except OSError as exc:
            raise ReportUnavailable(f"the evaluation report {path} cannot be read: {exc.strerror}") from None

    def report_figure(self, name: str) -> bytes | None:
        """One figure of the report being shown (`name` a plain file name), checked like the report; None if absent."""
        if Path(name).name != name or name in (".", ".."):
            return None  # nothing outside the model and report folders
        model = self.model
        if read_installed_file(model.model_dir, REPORT) is not None:
            return read_installed_file(model.model_dir, PLOT_PREFIX + name)
        path = self.report_dir / "plots" / name
        return path.read_bytes() if path.is_file() else None

    def gallery(self) -> dict[str, Any]:
        """Test images shipped with the model (a few of each class)."""
        model = self.model
        version = model.manifest.model_version
        if version not in self._galleries:
            self._galleries[version] = gallery.load(model.model_dir, model.manifest)
        pictures = self._galleries[version]
        images, labels = pictures if pictures is not None else (np.zeros((0,)), np.zeros((0,), dtype=np.int64))
        return {"image_shape": list(model.image_shape), "images": images.tolist(), "labels": labels.tolist()}

    def explain(self, image: Any, samples: int | None, seed: int, ks: list[int], repeats: int) -> dict[str, Any]:
        """Every number and picture of the page's "why sample z?" for one image (samples None: 16, or fewer where
        serve.max_samples is lower)."""
        samples = min(16, self.params.max_samples) if samples is None else samples
        return explain.explain(self.model, image, samples, seed, ks, repeats, self.params.max_explain_draws)

    def model_card(self) -> dict[str, Any]:
        """The served model's version, training data, headline metrics and promotion decision."""
        return model_card(self.model)

    # operations
    def health(self) -> dict[str, Any]:
        """Liveness and the model served: version, folder, load time, last reload error, providers."""
        return {"status": "ok", **self.holder.status(), "providers": self.model.providers}

    def metadata(self) -> dict[str, Any]:
        """Model version, hashes, shapes, likelihood, evaluation metrics, providers and limits."""
        return {**self.model.metadata, "max_body_bytes": self.params.max_body_bytes}

    def reload(self) -> tuple[bool, dict[str, Any]]:
        """Load the model folder again now; (whether a new model serves, the holder's status)."""
        swapped = self.holder.reload(force=True)
        return swapped, self.holder.status()
