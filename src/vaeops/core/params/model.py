"""`model` section: the VAE architecture (the input size comes from the prepared data)."""

from __future__ import annotations

from dataclasses import dataclass, field

from vaeops.core.errors import ParamsError
from vaeops.core.params.checks import check_choice

# Names accepted by vaeops.model.vae (kept here so reading params does not import torch; a test checks they agree).
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
        check_choice("model.activation", self.activation, MODEL_ACTIVATIONS)
        check_choice("model.likelihood", self.likelihood, MODEL_LIKELIHOODS)
        check_choice("model.gaussian_std", self.gaussian_std, ("learned", "fixed"))
        if self.fixed_std <= 0:
            raise ParamsError(f"model.fixed_std must be > 0, got {self.fixed_std}")
