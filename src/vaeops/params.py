"""Typed parameters: params.yaml is read once, one dataclass per stage section, checked before any work."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vaeops.errors import ParamsError

DEFAULT_PARAMS_PATH = Path("params.yaml")
DATASETS = ("digits", "mnist", "fashion-mnist")


@dataclass(frozen=True)
class DataParams:
    """`data` section, read by the prepare stage."""

    dataset: str = "digits"
    source_dir: str | None = None
    download: bool = False
    urls: list[str] = field(default_factory=list)
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    seed: int = 0
    out_dir: str = "data/prepared"
    cache_dir: str = "data/raw"

    def check(self) -> None:
        if self.dataset not in DATASETS:
            raise ParamsError(f"data.dataset: unknown data set {self.dataset!r}; choose one of {', '.join(DATASETS)}")
        for name, value in (("data.val_fraction", self.val_fraction), ("data.test_fraction", self.test_fraction)):
            _check_fraction(name, value)
            if value == 0:
                raise ParamsError(f"{name} must be above 0: every split needs images of every class")
        if self.val_fraction + self.test_fraction >= 1:
            raise ParamsError("data.val_fraction + data.test_fraction must be below 1")
        if self.seed < 0:
            raise ParamsError(f"data.seed must be >= 0, got {self.seed}")
        for url in self.urls:
            if not url.startswith(("http://", "https://", "file://")):
                raise ParamsError(f"data.urls: {url!r} is not an http(s):// or file:// base URL")


@dataclass(frozen=True)
class ValidateParams:
    """`validate` section: bounds of the Great Expectations gate; null means the data set's default."""

    report: str = "reports/validation.json"
    min_rows: int | None = None
    class_share_min: float | None = None
    class_share_max: float | None = None
    ink_threshold: float = 0.5
    ink_fraction_min: float | None = None
    ink_fraction_max: float | None = None
    max_leaked_images: int = 0

    def check(self) -> None:
        _check_fraction("validate.ink_threshold", self.ink_threshold)
        if self.max_leaked_images < 0:
            raise ParamsError("validate.max_leaked_images must be >= 0")
        if self.min_rows is not None and self.min_rows < 0:
            raise ParamsError(f"validate.min_rows must be >= 0, got {self.min_rows}")
        for low, high in (("class_share_min", "class_share_max"), ("ink_fraction_min", "ink_fraction_max")):
            lo, hi = getattr(self, low), getattr(self, high)
            for name, value in ((low, lo), (high, hi)):
                if value is not None and not 0 <= value <= 1:
                    raise ParamsError(f"validate.{name} must be in [0, 1], got {value}")
            if lo is not None and hi is not None and lo > hi:
                raise ParamsError(f"validate.{low} ({lo}) is above validate.{high} ({hi})")


@dataclass(frozen=True)
class PromoteParams:
    """`promote` section: the gate a new model passes to replace the champion that `vaeops serve` reads."""

    champion_dir: str = "champion"
    decision: str = "reports/promotion.json"
    nll_margin: float = 0.05

    def check(self) -> None:
        if not self.champion_dir.strip() or not self.decision.strip():
            raise ParamsError("promote.champion_dir and promote.decision must be non-empty paths")
        if self.nll_margin < 0:
            raise ParamsError(f"promote.nll_margin must be >= 0 nats, got {self.nll_margin}")


@dataclass(frozen=True)
class ExportParams:
    """`export` section: which checkpoint becomes ONNX, where it goes, and how close ONNX must stay to PyTorch."""

    checkpoint: str = "models/sample/best.pt"
    out_dir: str = "models/onnx"
    metrics: str = "reports/metrics.json"
    opset: int = 20
    parity_images: int = 256
    atol: float = 1e-5
    rtol: float = 1e-4

    def check(self) -> None:
        if not self.checkpoint.strip() or not self.out_dir.strip():
            raise ParamsError("export.checkpoint and export.out_dir must be non-empty paths")
        if not 18 <= self.opset <= 23:
            raise ParamsError(f"export.opset must be in [18, 23] (the opsets the exporter and onnxruntime share), got {self.opset}")
        if self.parity_images < 1:
            raise ParamsError(f"export.parity_images must be >= 1, got {self.parity_images}")
        if not (0 <= self.atol < 1 and 0 <= self.rtol < 1) or self.atol + self.rtol == 0:
            raise ParamsError(f"export.atol and export.rtol must be in [0, 1) and not both 0, got {self.atol}, {self.rtol}")


@dataclass(frozen=True)
class ServeParams:
    """`serve` section: where `vaeops serve` listens, which exported model it loads, and its request limits."""

    host: str = "127.0.0.1"
    port: int = 8000
    model_dir: str = "champion"
    max_batch: int = 256
    max_samples: int = 64
    max_body_bytes: int = 8_000_000
    threads: int = 0
    providers: list[str] = field(default_factory=list)

    def check(self) -> None:
        if not self.host.strip() or not self.model_dir.strip():
            raise ParamsError("serve.host and serve.model_dir must be non-empty")
        if not 0 <= self.port <= 65535:
            raise ParamsError(f"serve.port must be in [0, 65535], got {self.port}")
        for name in ("max_batch", "max_samples", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise ParamsError(f"serve.{name} must be >= 1, got {getattr(self, name)}")
        if self.threads < 0:
            raise ParamsError(f"serve.threads must be >= 0 (0 = onnxruntime's default), got {self.threads}")


@dataclass(frozen=True)
class EvaluateParams:
    """`evaluate` section: which models to compare on the test split, and how many Monte-Carlo samples each estimate uses."""

    seed: int = 0
    models: list[str] = field(default_factory=lambda: ["sample", "mean"])
    checkpoint: str = "best.pt"
    split: str = "test"
    binarize: str = "none"
    binarize_seed: int = 0
    recon_samples: int = 16
    elbo_ks: list[int] = field(default_factory=lambda: [1, 10, 100])
    elbo_repeats: int = 10
    study_images: int | None = None
    nll_k: int = 1000
    chunk_images: int = 16
    chunk_samples: int = 64
    precision: str = "fp32"
    active_threshold: float = 0.01
    collapse_kl: float = 0.01
    plot_images: int = 8
    prior_samples: int = 64
    out_dir: str = "reports"

    def check(self) -> None:
        if not self.models or len(set(self.models)) != len(self.models) or not all(m.strip() for m in self.models):
            raise ParamsError(f"evaluate.models must be a non-empty list of distinct model folder names, got {self.models}")
        if self.split not in ("train", "val", "test"):
            raise ParamsError(f"evaluate.split must be train, val or test, got {self.split!r}")
        if self.binarize not in ("none", "static"):
            raise ParamsError(f"evaluate.binarize must be none or static, got {self.binarize!r}")
        if self.precision not in ("fp32", "bf16"):
            raise ParamsError(f"evaluate.precision must be fp32 or bf16, got {self.precision!r}")
        if not self.elbo_ks:
            raise ParamsError("evaluate.elbo_ks must list at least one K")
        for name, value in [("recon_samples", self.recon_samples), ("elbo_repeats", self.elbo_repeats),
                            ("nll_k", self.nll_k), ("chunk_images", self.chunk_images),
                            ("chunk_samples", self.chunk_samples), ("plot_images", self.plot_images),
                            ("prior_samples", self.prior_samples),
                            *((f"elbo_ks[{i}]", k) for i, k in enumerate(self.elbo_ks))]:
            if value < 1:
                raise ParamsError(f"evaluate.{name} must be >= 1 (a K or sample count of zero estimates nothing), got {value}")
        if self.elbo_repeats < 2:
            raise ParamsError(f"evaluate.elbo_repeats must be >= 2 to measure the spread of an estimator, got {self.elbo_repeats}")
        if self.study_images is not None and self.study_images < 1:
            raise ParamsError(f"evaluate.study_images must be >= 1 or null (all images), got {self.study_images}")
        if self.active_threshold <= 0 or self.collapse_kl <= 0:
            raise ParamsError("evaluate.active_threshold and evaluate.collapse_kl must be > 0")


# Names accepted by vaeops.model (kept here so reading params does not import torch; a test checks they agree).
MODEL_ACTIVATIONS = ("relu", "tanh", "elu", "gelu", "softplus")
MODEL_LIKELIHOODS = ("bernoulli", "gaussian")


@dataclass(frozen=True)
class ModelParams:
    """`model` section: the VAE architecture (input size comes from the prepared data)."""

    hidden: list[int] = field(default_factory=lambda: [128])
    latent_dim: int = 8
    activation: str = "relu"
    likelihood: str = "bernoulli"
    gaussian_std: str = "learned"
    fixed_std: float = 0.1

    def check(self) -> None:
        for i, size in enumerate(self.hidden):
            if size < 1:
                raise ParamsError(f"model.hidden[{i}] must be >= 1, got {size}")
        if self.latent_dim < 1:
            raise ParamsError(f"model.latent_dim must be >= 1, got {self.latent_dim}")
        _check_choice("model.activation", self.activation, MODEL_ACTIVATIONS)
        _check_choice("model.likelihood", self.likelihood, MODEL_LIKELIHOODS)
        _check_choice("model.gaussian_std", self.gaussian_std, ("learned", "fixed"))
        if self.fixed_std <= 0:
            raise ParamsError(f"model.fixed_std must be > 0, got {self.fixed_std}")


@dataclass(frozen=True)
class TrainParams:
    """`train` section: objective, optimizer, loop and hardware settings of the train stage."""

    latent: str = "sample"
    objective: str = "elbo"
    samples: int = 1
    kl: str = "analytic"
    kl_warmup_epochs: int = 0
    epochs: int = 40
    batch_size: int = 64
    batch_size_schedule: list[int] = field(default_factory=list)
    lr: float = 1e-3
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    lr_schedule: str = "none"
    lr_step_epochs: int = 10
    lr_gamma: float = 0.5
    lr_patience: int = 3
    grad_clip: float = 0.0
    early_stopping_patience: int = 10
    binarize: str = "none"
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    precision: str = "auto"
    matmul_precision: str = "auto"
    compile: bool = False
    data_on_device: bool = True
    val_batch_size: int = 1024
    spread_samples: int = 8
    out_dir: str = "models"
    live_dir: str = "reports/train"

    def check(self) -> None:
        _check_choice("train.latent", self.latent, ("sample", "mean"))
        _check_choice("train.objective", self.objective, ("elbo", "iwae"))
        _check_choice("train.kl", self.kl, ("analytic", "mc"))
        _check_choice("train.lr_schedule", self.lr_schedule, ("none", "step", "cosine", "plateau"))
        _check_choice("train.binarize", self.binarize, ("none", "static", "dynamic"))
        _check_choice("train.precision", self.precision, ("auto", "fp32", "bf16"))
        _check_choice("train.matmul_precision", self.matmul_precision, ("auto", "highest", "high", "medium"))
        if not (self.device in ("auto", "cpu", "cuda", "mps") or _is_cuda_index(self.device)):
            raise ParamsError(f"train.device: unknown device {self.device!r}; choose auto, cpu, cuda, cuda:N or mps")
        if self.objective == "iwae" and self.latent == "mean":
            raise ParamsError("train.objective: iwae needs sampled latents; it cannot be combined with train.latent: mean")
        for name in ("samples", "epochs", "batch_size", "val_batch_size", "lr_step_epochs"):
            if getattr(self, name) < 1:
                raise ParamsError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("kl_warmup_epochs", "lr_patience", "early_stopping_patience", "threads"):
            if getattr(self, name) < 0:
                raise ParamsError(f"train.{name} must be >= 0 (0 = off / default), got {getattr(self, name)}")
        if not self.lr > 0:
            raise ParamsError(f"train.lr must be > 0, got {self.lr}")
        for name in ("adam_beta1", "adam_beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ParamsError(f"train.{name} must be in [0, 1), got {getattr(self, name)}")
        for i, size in enumerate(self.batch_size_schedule):
            if size < 1:
                raise ParamsError(f"train.batch_size_schedule[{i}] must be >= 1, got {size}")
        if not 0 < self.lr_gamma <= 1:
            raise ParamsError(f"train.lr_gamma must be in (0, 1], got {self.lr_gamma}")
        if self.grad_clip < 0:
            raise ParamsError(f"train.grad_clip must be >= 0 (0 = off), got {self.grad_clip}")
        if self.spread_samples == 1 or self.spread_samples < 0:
            raise ParamsError(f"train.spread_samples must be 0 (off) or >= 2 (a spread needs two draws), got {self.spread_samples}")

    def batch_size_at(self, epoch: int) -> int:
        """The batch size of `epoch` (from 0): batch_size_schedule[epoch], its last entry past its end, or batch_size."""
        schedule = self.batch_size_schedule
        return schedule[min(epoch, len(schedule) - 1)] if schedule else self.batch_size


SECTIONS: dict[str, type] = {
    "data": DataParams,
    "validate": ValidateParams,
    "promote": PromoteParams,
    "export": ExportParams,
    "serve": ServeParams,
    "evaluate": EvaluateParams,
    "model": ModelParams,
    "train": TrainParams,
}


@dataclass(frozen=True)
class Params:
    """All sections of params.yaml, plus the path they came from."""

    sections: dict[str, Any]
    path: Path

    def __getattr__(self, name: str) -> Any:
        try:
            return self.sections[name]
        except KeyError:
            raise AttributeError(name) from None

    def section_dict(self, name: str) -> dict[str, Any]:
        """Return one section as a plain dict (for manifests and checkpoints)."""
        return dataclasses.asdict(self.sections[name])


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ParamsError(f"{name}: unknown value {value!r}; choose one of {', '.join(choices)}")


def _is_cuda_index(device: str) -> bool:
    prefix, _, index = device.partition(":")
    return prefix == "cuda" and index.isdigit()


def _check_fraction(name: str, value: float) -> None:
    if not 0 <= value < 1:
        raise ParamsError(f"{name} must be in [0, 1), got {value}")


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """Check `value` against a type hint, converting only what is lossless (int -> float, list -> tuple)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(name, value, option)
            except ParamsError as exc:
                errors.append(str(exc))
        raise ParamsError(errors[0] if errors else f"{name}: unexpected value {value!r}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"{name}: expected a list, got {value!r}")
        (item_hint, *_) = typing.get_args(hint) or (Any,)
        return [_coerce(f"{name}[{i}]", item, item_hint) for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamsError(f"{name}: expected a mapping, got {value!r}")
        return dict(value)
    if hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{name}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{name}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{name}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ParamsError(f"{name}: expected a string, got {value!r}")
        return value
    raise ParamsError(f"{name}: unsupported parameter type {hint!r}")


def build_section(name: str, raw: Any) -> Any:
    """Build and check the dataclass of one section from its raw YAML mapping."""
    cls = SECTIONS[name]
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ParamsError(f"params section {name!r} must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ParamsError(f"unknown key(s) in section {name!r}: {', '.join(unknown)}; known keys: {', '.join(sorted(known))}")
    values = {key: _coerce(f"{name}.{key}", value, hints[key]) for key, value in raw.items()}
    section = cls(**values)
    section.check()
    return section


def parse_params(raw: Any, path: Path = DEFAULT_PARAMS_PATH) -> Params:
    """Turn the parsed YAML document into checked, typed sections."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: the top level must be a mapping of sections, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ParamsError(f"{path}: unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    return Params({name: build_section(name, raw.get(name)) for name in SECTIONS}, Path(path))


def load_params(path: str | Path = DEFAULT_PARAMS_PATH, overrides: dict[str, Any] | None = None) -> Params:
    """Read, check and type params.yaml; `overrides` maps "section.key" to a value (CLI and flow overrides)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamsError(f"params file not found: {path}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {exc}") from None
    if overrides:
        raw = dict(raw or {})
        for dotted, value in overrides.items():
            section, _, key = dotted.partition(".")
            if not key:
                raise ParamsError(f"override {dotted!r} must look like section.key")
            raw[section] = {**(raw.get(section) or {}), key: value}
    return parse_params(raw, path)
