"""`train` section: which model variant to train, its objective, optimiser, loop and hardware settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from vaeops.core.errors import ParamsError
from vaeops.core.params.checks import check_choice, is_cuda_index


@dataclass(frozen=True)
class Variant:
    """How one model variant is trained: the latent its reconstruction term decodes, and whether the loss has a KL term."""

    latent: str  # sample: z ~ q(z|x), reparameterized | mean: the plug-in z = mu
    kl: bool  # the loss includes KL(q(z|x) || p(z)) (weighted by the warm-up beta)


# The trained model variants. `vae` is the standard VAE: its reconstruction term is E_q[log p(x|z)], estimated with
# z ~ q(z|x). `plugin` keeps the same encoder, decoder and KL term but replaces that expectation by its plug-in value
# log p(x|z = mu), the "why not decode the mean?" model. `autoencoder` also drops the KL term: a plain autoencoder
# with the same architecture and likelihood, the "why not a deterministic reconstruction loss?" model.
# Decode modes at evaluation time ("mean", "sample") are a different thing and keep those names.
VARIANTS = {"vae": Variant("sample", kl=True), "plugin": Variant("mean", kl=True), "autoencoder": Variant("mean", kl=False)}


@dataclass(frozen=True)
class TrainParams:
    """`train` section: objective, optimizer, loop and hardware settings of the train stage."""

    variant: str = "vae"
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
    replicates: int = 1
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
        check_choice("train.variant", self.variant, tuple(VARIANTS))
        check_choice("train.objective", self.objective, ("elbo", "iwae"))
        check_choice("train.kl", self.kl, ("analytic", "mc"))
        check_choice("train.lr_schedule", self.lr_schedule, ("none", "step", "cosine", "plateau"))
        check_choice("train.binarize", self.binarize, ("none", "static", "dynamic"))
        check_choice("train.precision", self.precision, ("auto", "fp32", "bf16"))
        check_choice("train.matmul_precision", self.matmul_precision, ("auto", "highest", "high", "medium"))
        if not (self.device in ("auto", "cpu", "cuda", "mps") or is_cuda_index(self.device)):
            raise ParamsError(f"train.device: unknown device {self.device!r}; choose auto, cpu, cuda, cuda:N or mps")
        if self.objective == "iwae" and VARIANTS[self.variant].latent == "mean":
            raise ParamsError(f"train.objective: iwae needs sampled latents; it cannot train the {self.variant!r} variant")
        for name in ("samples", "epochs", "batch_size", "val_batch_size", "lr_step_epochs", "replicates"):
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
