"""`evaluate` section: which models to compare on the test split, and how many Monte-Carlo samples each estimate
uses."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from vaeops.core.params.base import Count, Number, Section


class EvaluateParams(Section):
    """`evaluate` section: the models compared on the evaluation split and every Monte-Carlo budget."""

    seed: int = Field(0, ge=0)
    models: list[str] = Field(["vae", "plugin", "autoencoder"], min_length=1)
    checkpoint: str = "best.pt"
    split: Literal["train", "val", "test"] = "test"
    binarize: Literal["none", "static"] = "none"
    binarize_seed: int = 0
    recon_samples: int = Field(16, ge=1)
    elbo_ks: list[Count] = Field([1, 10, 100], min_length=1)
    elbo_repeats: int = Field(10, ge=2)  # a spread needs two repeats
    nll_images: int | None = Field(1000, ge=1)
    nll_k: int = Field(1000, ge=1)  # a K of zero estimates nothing
    chunk_images: int = Field(16, ge=1)
    chunk_samples: int = Field(64, ge=1)
    precision: Literal["fp32", "bf16"] = "fp32"
    active_threshold: Number = Field(0.01, gt=0)
    collapse_kl: Number = Field(0.01, gt=0)
    plot_images: int = Field(8, ge=1)
    prior_samples: int = Field(64, ge=1)
    out_dir: str = "reports"

    @field_validator("models")
    @classmethod
    def _distinct(cls, models: list[str]) -> list[str]:
        if len(set(models)) != len(models) or not all(m.strip() for m in models):
            raise ValueError(f"evaluate.models must list distinct model folder names, got {models}")
        return models
