"""`train` section: which model variant to train, its objective, optimiser, loop and hardware settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field, model_validator

from vaeops.core.params.base import Count, Number, Section


@dataclass(frozen=True)
class Variant:
    """How one model variant is trained: the latent its reconstruction term decodes, and whether the loss has a KL
    term."""

    latent: str  # sample: z ~ q(z|x), reparameterized | mean: the plug-in z = mu
    kl: bool  # the loss includes KL(q(z|x) || p(z)) (weighted by the warm-up beta)


# The trained model variants. `vae` is the standard VAE: its reconstruction term is E_q[log p(x|z)], estimated with
# z ~ q(z|x). `plugin` keeps the same encoder, decoder and KL term but replaces that expectation by its plug-in value
# log p(x|z = mu), the "why not decode the mean?" model. `autoencoder` also drops the KL term: a plain autoencoder
# with the same architecture and likelihood, the "why not a deterministic reconstruction loss?" model.
# Decode modes at evaluation time ("mean", "sample") are a different thing and keep those names.
VARIANTS = {
    "vae": Variant("sample", kl=True),
    "plugin": Variant("mean", kl=True),
    "autoencoder": Variant("mean", kl=False),
}


class TrainParams(Section):
    """`train` section: objective, optimizer, loop and hardware settings of the train stage."""

    variant: Literal["vae", "plugin", "autoencoder"] = "vae"
    objective: Literal["elbo", "iwae"] = "elbo"
    samples: int = Field(1, ge=1)
    kl: Literal["analytic", "mc"] = "analytic"
    kl_warmup_epochs: int = Field(0, ge=0)  # 0 = off
    epochs: int = Field(40, ge=1)
    batch_size: int = Field(64, ge=1)
    batch_size_schedule: list[Count] = []
    lr: Number = Field(1e-3, gt=0)
    adam_beta1: Number = Field(0.9, ge=0, lt=1)
    adam_beta2: Number = Field(0.999, ge=0, lt=1)
    lr_schedule: Literal["none", "step", "cosine", "plateau"] = "none"
    lr_step_epochs: int = Field(10, ge=1)
    lr_gamma: Number = Field(0.5, gt=0, le=1)
    lr_patience: int = Field(3, ge=0)
    grad_clip: Number = Field(0.0, ge=0)  # 0 = off
    early_stopping_patience: int = Field(10, ge=0)  # 0 = off
    binarize: Literal["none", "static", "dynamic"] = "none"
    seed: int = 0
    replicates: int = Field(1, ge=1)
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda|mps|cuda:\d+)$")
    threads: int = Field(0, ge=0)  # 0 = torch's default
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    matmul_precision: Literal["auto", "highest", "high", "medium"] = "auto"
    compile: bool = False
    data_on_device: bool = True
    val_batch_size: int = Field(1024, ge=1)
    spread_samples: int = Field(8, ge=0)
    out_dir: str = "models"
    live_dir: str = "reports/train"

    @model_validator(mode="after")
    def _consistent(self) -> TrainParams:
        if self.objective == "iwae" and VARIANTS[self.variant].latent == "mean":
            raise ValueError(
                f"train.objective: iwae needs sampled latents; it cannot train the {self.variant!r} variant"
            )
        if self.spread_samples == 1:
            raise ValueError("train.spread_samples must be 0 (off) or >= 2 (a spread needs two draws), got 1")
        return self

    def batch_size_at(self, epoch: int) -> int:
        """The batch size of `epoch` (from 0): batch_size_schedule[epoch], its last entry past its end, or
        batch_size."""
        schedule = self.batch_size_schedule
        return schedule[min(epoch, len(schedule) - 1)] if schedule else self.batch_size
