"""`evaluate` section: which models to compare on the test split, and how many Monte-Carlo samples each estimate uses."""

from __future__ import annotations

from dataclasses import dataclass, field

from vaeops.core.errors import ParamsError


@dataclass(frozen=True)
class EvaluateParams:
    """`evaluate` section: which models to compare on the test split, and how many Monte-Carlo samples each estimate uses."""

    seed: int = 0
    models: list[str] = field(default_factory=lambda: ["vae", "plugin", "autoencoder"])
    checkpoint: str = "best.pt"
    split: str = "test"
    binarize: str = "none"
    binarize_seed: int = 0
    recon_samples: int = 16
    elbo_ks: list[int] = field(default_factory=lambda: [1, 10, 100])
    elbo_repeats: int = 10
    study_images: int | None = 500
    nll_images: int | None = 1000
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
        for name in ("study_images", "nll_images"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ParamsError(f"evaluate.{name} must be >= 1 or null (all images), got {getattr(self, name)}")
        if self.active_threshold <= 0 or self.collapse_kl <= 0:
            raise ParamsError("evaluate.active_threshold and evaluate.collapse_kl must be > 0")
