"""`model` section: the VAE architecture (the input size comes from the prepared data)."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field

from vaeops.core.params.base import Count, Number, Section

Activation = Literal["relu", "tanh", "elu", "gelu", "softplus"]
Likelihood = Literal["bernoulli", "gaussian"]
# Names accepted by vaeops.model.vae (kept here so reading params does not import torch; a test checks they agree).
MODEL_ACTIVATIONS = get_args(Activation)
MODEL_LIKELIHOODS = get_args(Likelihood)


class ModelParams(Section):
    """`model` section: the VAE architecture (input size comes from the prepared data)."""

    hidden: list[Count] = [128]
    latent_dim: int = Field(8, ge=1)
    activation: Activation = "relu"
    likelihood: Likelihood = "bernoulli"
    gaussian_std: Literal["learned", "fixed"] = "learned"
    fixed_std: Number = Field(0.1, gt=0)
