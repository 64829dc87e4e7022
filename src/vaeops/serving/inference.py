"""Inference library: the exported VAE under onnxruntime, with checked inputs and files; importable without torch."""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from vaeops.bundle.manifest import (
    GRAPHS,
    METADATA_PREFIX,
    read_listed_file,
    read_manifest,
)
from vaeops.core.errors import InferenceFailed, InputError, ModelFileError, ParamsError
from vaeops.serving.inputs import LATENT_BOUND, as_array, check_count, check_finite, check_int

# The three reconstructions of docs/evaluation.md: the mean decode (z = mu), one sampled decode (z ~ q(z|x)), and the
# posterior predictive mean (the average decoded image of `samples` draws).
MODES = ("mean", "sample", "predictive")
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
CPU_PROVIDER = "CPUExecutionProvider"
DECODE_CHUNK = 4096  # latents per decoder run in sampled reconstruction: bounds working memory
ORT_DEFAULT_SEVERITY = 2
ONE_BITS = int(np.float32(1.0).view(np.uint32))  # 0x3F800000


def choose_providers(model: bytes, requested: list[str] | None = None) -> list[str]:
    """Providers for the sessions: `requested` if given, else the best GPU provider that really loads, then CPU.

    A GPU build of onnxruntime lists CUDA and TensorRT even where their libraries or the GPU are missing and then
    silently falls back to CPU, so each candidate is tried once, quietly, on the model itself.
    """
    available = ort.get_available_providers()
    if requested:
        unknown = [p for p in requested if p not in available]
        if unknown:
            raise ParamsError(f"execution provider(s) {unknown} not available here; available: {available}")
        return list(requested)
    for index, provider in enumerate(GPU_PROVIDERS):
        if provider not in available:
            continue
        candidates = [p for p in GPU_PROVIDERS[index:] if p in available] + [CPU_PROVIDER]
        ort.set_default_logger_severity(4)
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # the TensorRT fallback prints a banner on stdout
                got = ort.InferenceSession(model, providers=candidates).get_providers()
        except Exception:  # a provider that fails to initialise is simply not usable here
            got = []
        finally:
            ort.set_default_logger_severity(ORT_DEFAULT_SEVERITY)
        if got and got[0] == provider:
            return candidates
    return [CPU_PROVIDER]


def session_options(threads: int) -> ort.SessionOptions:
    """Latency-oriented options: full graph optimisation, sequential execution, `threads` intra-op threads."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return options


class OnnxVAE:
    """The exported VAE: encode, decode, reconstruct (mean or sampled) and generate, on the best provider here."""

    def __init__(
        self,
        model_dir: str | Path,
        max_batch: int = 256,
        max_samples: int = 64,
        threads: int = 0,
        providers: list[str] | None = None,
    ):
        self.model_dir = Path(model_dir)
        self.manifest = read_manifest(self.model_dir)
        self.max_batch = max_batch
        self.max_samples = max_samples
        graphs = {name: read_listed_file(self.model_dir, self.manifest.graphs[name], name) for name in GRAPHS}
        chosen = choose_providers(graphs["reconstruct_mean"], providers)
        options = session_options(threads)
        try:
            self.sessions = {
                name: ort.InferenceSession(data, options, providers=chosen) for name, data in graphs.items()
            }
        except Exception as exc:  # onnxruntime's own types: the file passed its sha256 check, so the export is broken
            raise ModelFileError(f"onnxruntime cannot load the graphs in {self.model_dir}: {exc}") from None
        for name, session in self.sessions.items():
            version = session.get_modelmeta().custom_metadata_map.get(f"{METADATA_PREFIX}model_version")
            if version != self.manifest.model_version:
                raise ModelFileError(
                    f"{name}: model version {version!r} in the file differs from the manifest's "
                    f"{self.manifest.model_version!r}"
                )
        self.providers = self.sessions["reconstruct_mean"].get_providers()
        self.input_shapes = {name: [(i.name, i.shape) for i in s.get_inputs()] for name, s in self.sessions.items()}
        self.image_shape = tuple(self.manifest.image_shape)
        self.input_dim = self.manifest.input_dim
        self.latent_dim = self.manifest.latent_dim
        # Called with (graph, seconds) after every onnxruntime run: the HTTP service's inference-time metric.
        self.on_run: Callable[[str, float], None] | None = None

    @property
    def metadata(self) -> dict[str, Any]:
        """What a client needs to know about the model: versions, shapes, likelihood, metrics, providers, limits."""
        keys = (
            "model_version",
            "params_sha256",
            "data_sha256",
            "checkpoint_sha256",
            "epoch",
            "latent_dim",
            "input_dim",
            "image_shape",
            "likelihood",
            "metrics",
            "opset",
            "parity",
        )
        described = self.manifest.model_dump(mode="json", include=set(keys))
        return {**described, "providers": self.providers, "max_batch": self.max_batch, "max_samples": self.max_samples}

    def _images(self, images: Any) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray], bool]:
        """Validate images; return them as float32 (N, D), a function giving outputs the caller's layout, and
        whether the caller passed one image rather than a batch."""
        array = as_array(images, "images")
        if array.size == 0:
            raise InputError(f"images: empty batch (no values, shape {array.shape})")
        shape, (h, w), d = array.shape, self.image_shape, self.input_dim
        single = shape in ((d,), (h, w))
        if single:
            array, restore = array.reshape(1, d), lambda out: out.reshape(shape)
        elif (array.ndim == 2 and shape[1] == d) or (array.ndim == 3 and shape[1:] == (h, w)):
            array, restore = array.reshape(len(array), d), lambda out: out.reshape((len(out), *shape[1:]))
        else:
            raise InputError(
                f"images have shape {shape}; expected one image ({h}, {w}) or ({d},), or a batch (N, {h}, {w}) "
                f"or (N, {d})"
            )
        check_count(len(array), self.max_batch, "images")
        # One pass settles both checks on the fast path: read as unsigned integers, the float32 values in [0, 1] are
        # exactly the bit patterns up to 1.0's (a negative sets the sign bit; NaN and inf lie above 1.0).
        if array.dtype == np.float32 and array.view(np.uint32).max() <= ONE_BITS:
            return np.ascontiguousarray(array), restore, single
        low, high = array.min(), array.max()  # NaN makes either comparison false, inf the range; -0.0 passes
        if not (low >= 0 and high <= 1):
            check_finite(array, "images")
            hint = " (scale 0-255 images to [0, 1] first)" if array.dtype.kind in "iu" or high > 1.5 else ""
            raise InputError(f"image values must lie in [0, 1], got min {low:.6g}, max {high:.6g}{hint}")
        return np.ascontiguousarray(array, dtype=np.float32), restore, single

    def _latents(self, z: Any, what: str = "z") -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
        """Validate latents (L,) or (N, L); return float32 (N, L) and a function shaping decoded images."""
        array = as_array(z, what)
        if array.size == 0:
            raise InputError(f"{what}: empty batch (no values, shape {array.shape})")
        check_finite(array, what)
        if array.size and float(np.abs(array).max()) > LATENT_BOUND:
            raise InputError(
                f"{what} must lie in [-{LATENT_BOUND:g}, {LATENT_BOUND:g}], got |{what}| up to "
                f"{float(np.abs(array).max()):.6g}"
            )
        if array.shape == (self.latent_dim,):
            array, restore = array.reshape(1, -1), lambda out: out.reshape(self.image_shape)
        elif array.ndim == 2 and array.shape[1] == self.latent_dim:
            restore = lambda out: out.reshape((len(out), *self.image_shape))  # noqa: E731
        else:
            raise InputError(f"{what} has shape {array.shape}; expected ({self.latent_dim},) or (N, {self.latent_dim})")
        check_count(len(array), self.max_batch, what)
        return np.ascontiguousarray(array, dtype=np.float32), restore

    def _run(self, graph: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run one graph; onnxruntime's exception types never reach the caller."""
        for name, shape in self.input_shapes[graph]:  # last guard: validation above should already guarantee this
            array = feeds[name]
            if (
                array.dtype != np.float32
                or array.ndim != len(shape)
                or any(isinstance(dim, int) and dim != got for dim, got in zip(shape, array.shape))
            ):
                raise InputError(f"{graph}.{name}: got {array.dtype} {array.shape}, the graph expects float32 {shape}")
        started = time.perf_counter()
        try:
            outputs = self.sessions[graph].run(None, feeds)
        except Exception as exc:
            raise InferenceFailed(f"onnxruntime failed running {graph}: {exc}") from None
        if self.on_run is not None:
            self.on_run(graph, time.perf_counter() - started)
        return outputs

    def run_graph(self, graph: str, inputs: dict[str, Any]) -> dict[str, np.ndarray]:
        """Run one exported graph on named batch inputs, each checked like the methods below check theirs: images
        `x` (N, D) in [0, 1], latents `z` and noise `eps` (N, L), finite, N within max_batch. For protocol front ends
        (the Open Inference Protocol) that address graphs and tensors by name."""
        if graph not in self.sessions:
            raise InputError(f"unknown graph {graph!r}; this model has {', '.join(self.sessions)}")
        expected = [name for name, _ in self.input_shapes[graph]]
        if sorted(inputs) != sorted(expected):
            raise InputError(f"{graph} takes input(s) {', '.join(expected)}, got {', '.join(inputs) or 'none'}")
        feeds, rows = {}, set()
        for name, value in inputs.items():
            array = as_array(value, name)
            width = self.input_dim if name == "x" else self.latent_dim
            if array.ndim != 2 or array.shape[1] != width:
                raise InputError(f"{graph}.{name} has shape {list(array.shape)}; expected [N, {width}]")
            feeds[name] = self._images(array)[0] if name == "x" else self._latents(array, name)[0]
            rows.add(len(array))
        if len(rows) > 1:
            raise InputError(f"{graph}: the inputs disagree on the batch size ({sorted(rows)})")
        outputs = [output.name for output in self.sessions[graph].get_outputs()]
        return dict(zip(outputs, self._run(graph, feeds)))

    def encode(self, images: Any) -> tuple[np.ndarray, np.ndarray]:
        """Posterior parameters of each image: (mu, logvar), each (N, latent) or (latent,) for a single image."""
        x, _, single = self._images(images)
        mu, logvar = self._run("encoder", {"x": x})
        return (mu[0], logvar[0]) if single else (mu, logvar)

    def decode(self, z: Any) -> np.ndarray:
        """Pixel probabilities (Bernoulli) or means (Gaussian) for latents z, as images (N, H, W) or (H, W)."""
        array, restore = self._latents(z)
        return restore(self._run("decoder", {"z": array})[0])

    def reconstruct(self, images: Any, mode: str = "mean", samples: int = 1, seed: int | None = None) -> np.ndarray:
        """Reconstruct images in their own layout: mode="mean" decodes z = mu; mode="sample" decodes one draw
        z = mu + sigma * eps, eps ~ N(0, I) from `seed`; mode="predictive" averages the decoded images of `samples`
        such draws (the posterior predictive mean x_bar)."""
        if mode not in MODES:
            raise InputError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        samples = check_int(samples, "samples", 1, self.max_samples)
        if mode != "predictive" and samples != 1:
            raise InputError(
                f"samples applies to mode='predictive' only (the average of S decodes); mode={mode!r} decodes "
                "one z per image"
            )
        seed = None if seed is None else check_int(seed, "seed", 0)
        x, restore, _ = self._images(images)
        if mode == "mean":
            return restore(self._run("reconstruct_mean", {"x": x})[0])
        rng = np.random.default_rng(seed)
        if samples == 1:
            eps = rng.standard_normal((len(x), self.latent_dim), dtype=np.float32)
            return restore(self._run("reconstruct", {"x": x, "eps": eps})[0])
        # Several draws: encode once, then decode all S * N latents in bounded chunks and average per image.
        mu, logvar = self._run("encoder", {"x": x})
        eps = rng.standard_normal((samples, len(x), self.latent_dim), dtype=np.float32)
        z = (mu + np.exp(0.5 * logvar) * eps).reshape(-1, self.latent_dim)
        decoded = self.decode_many(z)
        return restore(decoded.reshape(samples, len(x), -1).mean(axis=0, dtype=np.float64).astype(np.float32))

    def decode_many(self, z: np.ndarray) -> np.ndarray:
        """Decoder outputs (M, D) for many float32 latents (M, L), in bounded chunks and without the per-request
        batch limit: for work whose size the caller has already bounded (sampled reconstructions, /explain)."""
        z = np.ascontiguousarray(z, dtype=np.float32)
        return np.concatenate(
            [self._run("decoder", {"z": z[i : i + DECODE_CHUNK]})[0] for i in range(0, len(z), DECODE_CHUNK)]
        )

    def generate(self, n: int, seed: int | None = None) -> np.ndarray:
        """Draw n images from the model: z ~ N(0, I) from `seed`, decoded to pixel probabilities (n, H, W)."""
        n = check_int(n, "n", 1, self.max_batch)
        seed = None if seed is None else check_int(seed, "seed", 0)
        z = np.random.default_rng(seed).standard_normal((n, self.latent_dim), dtype=np.float32)
        return self._run("decoder", {"z": z})[0].reshape((n, *self.image_shape))


def load(model_dir: str | Path, **options: Any) -> OnnxVAE:
    """Load the exported model in `model_dir` (see OnnxVAE for the options)."""
    return OnnxVAE(model_dir, **options)
