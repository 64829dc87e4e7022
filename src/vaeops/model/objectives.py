"""The training objectives: the K-sample Monte-Carlo ELBO (Kingma & Welling 2014, eq. 3) and the IWAE bound."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from vaeops.model.vae import LOG_2PI, VAE, shift_scale


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) in closed form, per latent dimension (same shape as mu)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def log_normal(z: torch.Tensor, mu: torch.Tensor | None = None, logvar: torch.Tensor | None = None) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))) summed over the last dimension; mu = logvar = None is N(0, I)."""
    if mu is None:
        return -0.5 * (z.pow(2) + LOG_2PI).sum(-1)
    return -0.5 * ((z - mu).pow(2) / logvar.exp() + logvar + LOG_2PI).sum(-1)


def sample_latents(
    mu: torch.Tensor, logvar: torch.Tensor, samples: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw `samples` latents z = mu + sigma * eps, eps ~ N(0, I), and return (z, eps), each (samples, B, latent);
    z is differentiable in mu and logvar."""
    eps = torch.randn((samples, *mu.shape), dtype=mu.dtype, device=mu.device, generator=generator)
    return shift_scale(mu, logvar, eps), eps


def reparameterize(
    mu: torch.Tensor, logvar: torch.Tensor, samples: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw `samples` latents z ~ q(z|x) by reparameterisation: shape (samples, B, latent)."""
    return sample_latents(mu, logvar, samples, generator)[0]


def log_prior_ratio(z: torch.Tensor, eps: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log p(z) - log q(z|x) at z = mu + sigma * eps, summed over the latent: -(|z|^2 - |eps|^2) / 2 + sum(logvar) / 2.

    The importance log-weight is log p(x|z) plus this; written with eps it takes two cheap passes instead of two
    Gaussian densities, and it is the only implementation of that ratio (training's IWAE and Monte-Carlo KL, the
    estimators)."""
    return 0.5 * logvar.sum(-1) - 0.5 * (z.square() - eps.square()).sum(-1)


@dataclass
class ObjectiveTerms:
    """Per-batch values of one objective evaluation; `loss` is what the optimizer minimizes."""

    loss: torch.Tensor  # scalar, mean over the batch
    recon: torch.Tensor  # scalar, mean over the batch of E_q[log p(x|z)] (estimated)
    kl: torch.Tensor  # scalar, mean over the batch of KL(q(z|x) || p(z))
    per_sample_elbo: torch.Tensor  # (K, B): one single-sample ELBO estimate per draw, for the MC spread


def elbo_terms(
    model: VAE,
    x: torch.Tensor,
    samples: int = 1,
    latent: str = "sample",
    kl: str = "analytic",
    beta: float = 1.0,
    generator: torch.Generator | None = None,
) -> ObjectiveTerms:
    """Negative ELBO estimated with K reparameterized samples; latent="mean" decodes z = mu instead (the
    deterministic variant: its reconstruction term is the plug-in log p(x|mu), not an expectation under q)."""
    mu, logvar = model.encode(x)
    if latent == "mean":
        z, eps = mu.unsqueeze(0), None
    else:
        z, eps = sample_latents(mu, logvar, samples, generator)
    log_px_z = model.log_likelihood(x, model.decode(z))  # (K, B)
    if kl == "analytic" or eps is None:
        kl_per_input = gaussian_kl(mu, logvar).sum(-1).expand_as(log_px_z)  # (K, B)
    else:
        kl_per_input = -log_prior_ratio(z, eps, logvar)
    per_sample_elbo = log_px_z - kl_per_input
    recon = log_px_z.mean()
    kl_mean = kl_per_input.mean()
    loss = -(recon - beta * kl_mean)
    return ObjectiveTerms(loss=loss, recon=recon, kl=kl_mean, per_sample_elbo=per_sample_elbo.detach())


def log_importance_weights(
    model: VAE, x: torch.Tensor, samples: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x) for K draws z_k ~ q(z|x): shape (K, B)."""
    mu, logvar = model.encode(x)
    z, eps = sample_latents(mu, logvar, samples, generator)
    return model.log_likelihood(x, model.decode(z)) + log_prior_ratio(z, eps, logvar)


def iwae_bound(log_weights: torch.Tensor) -> torch.Tensor:
    """The importance-weighted bound L_K = log (1/K) sum_k w_k per input, computed stably by log-sum-exp over dim 0."""
    return torch.logsumexp(log_weights, dim=0) - math.log(log_weights.shape[0])


def iwae_terms(model: VAE, x: torch.Tensor, samples: int, generator: torch.Generator | None = None) -> ObjectiveTerms:
    """Negative IWAE bound with K samples (Burda et al. 2016) as a training objective."""
    mu, logvar = model.encode(x)
    z, eps = sample_latents(mu, logvar, samples, generator)
    log_px_z = model.log_likelihood(x, model.decode(z))
    kl_per_draw = -log_prior_ratio(z, eps, logvar)
    log_w = log_px_z - kl_per_draw
    bound = iwae_bound(log_w)
    return ObjectiveTerms(
        loss=-bound.mean(), recon=log_px_z.mean(), kl=kl_per_draw.mean(), per_sample_elbo=log_w.detach()
    )
