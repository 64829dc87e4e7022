"""The objectives against closed forms: Gaussian KL, log densities, and a linear-Gaussian VAE whose log p(x) is
exact."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import MultivariateNormal, Normal, kl_divergence

from vaeops.model.objectives import (
    elbo_terms,
    gaussian_kl,
    iwae_bound,
    iwae_terms,
    log_importance_weights,
    log_normal,
    reparameterize,
)
from vaeops.model.vae import VAE, ModelConfig, bernoulli_log_prob, softplus_sum


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_gaussian_kl_matches_torch_distributions_and_a_monte_carlo_estimate():
    g = gen(0)
    mu, logvar = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    closed = gaussian_kl(mu, logvar)
    reference = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0))
    torch.testing.assert_close(closed, reference, rtol=1e-5, atol=1e-6)

    z = reparameterize(mu, logvar, 200_000, generator=g)  # (S, 4, 3)
    per_draw = log_normal(z, mu, logvar) - log_normal(z)  # single-draw KL estimates, (S, 4)
    estimate, stderr = per_draw.mean(0), per_draw.std(0) / math.sqrt(per_draw.shape[0])
    assert torch.all((estimate - closed.sum(-1)).abs() < 5 * stderr + 1e-3)


def test_log_normal_matches_torch_distributions():
    g = gen(1)
    z, mu, logvar = torch.randn(5, 2, 4, generator=g), torch.randn(2, 4, generator=g), torch.randn(2, 4, generator=g)
    torch.testing.assert_close(log_normal(z, mu, logvar), Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum(-1))
    torch.testing.assert_close(log_normal(z), Normal(0.0, 1.0).log_prob(z).sum(-1))


def test_bernoulli_log_prob_matches_torch_cross_entropy_in_value_and_gradient():
    g = gen(2)
    logits = (torch.randn(3, 4, 6, generator=g, dtype=torch.float64) * 10).requires_grad_()  # (K, B, D)
    x = torch.rand(4, 6, generator=g, dtype=torch.float64).requires_grad_()  # grey levels, broadcast over K
    reference = -torch.nn.functional.binary_cross_entropy_with_logits(
        logits, x.expand_as(logits), reduction="none"
    ).sum(-1)
    torch.testing.assert_close(bernoulli_log_prob(logits, x), reference, rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(bernoulli_log_prob, (logits, x))
    # fp32 and bf16 logits (what bf16 autocast hands over) against the float64 value: fp32 arithmetic error only
    wide = torch.randn(64, 784, generator=g) * 30
    exact = -torch.nn.functional.binary_cross_entropy_with_logits(
        wide.double(), x.new_ones(784).expand(64, 784), reduction="none"
    ).sum(-1)
    assert (bernoulli_log_prob(wide, torch.ones(784)).double() - exact).abs().max() < 5e-3
    assert bernoulli_log_prob(wide.bfloat16(), torch.ones(784)).dtype == torch.float32


@pytest.mark.parametrize("width", [1, 2, 7, 13, 16, 784, 1000])
def test_softplus_sum_matches_float64_softplus_for_any_width(width):
    # widths that fold evenly, oddly at several levels, and not at all; logits from -100 to 100
    logits = torch.randn(5, 3, width, generator=gen(3)) * 40
    exact = torch.nn.functional.softplus(logits.double(), threshold=500).sum(-1)  # no linear cut-off at 20
    assert (softplus_sum(logits).double() - exact).abs().max() <= 1e-6 * exact.abs().max() + 1e-5
    torch.testing.assert_close(softplus_sum(logits.double()), exact, rtol=1e-12, atol=1e-12)


def test_gradients_reach_mu_and_logvar_through_the_reparameterization():
    mu = torch.tensor([[0.3, -1.0]], requires_grad=True)
    logvar = torch.tensor([[0.2, -0.7]], requires_grad=True)
    z = reparameterize(mu, logvar, 3, generator=gen(2))
    z.sum().backward()
    eps = torch.randn((3, 1, 2), generator=gen(2))  # the same draws again
    torch.testing.assert_close(mu.grad, torch.full_like(mu, 3.0))  # dz/dmu = 1 per draw
    torch.testing.assert_close(logvar.grad, (0.5 * torch.exp(0.5 * logvar.detach()) * eps).sum(0))


def linear_gaussian_vae(seed: int = 3) -> tuple[VAE, torch.Tensor, torch.Tensor]:
    """A VAE with no hidden layers, a fixed-variance Gaussian decoder and the exact posterior as encoder.

    p(z) = N(0, I), p(x|z) = N(Wz + b, s^2 I), so p(x) = N(b, W W^T + s^2 I). With orthogonal columns in W the
    posterior N(A (x - b), S) has a diagonal S = (I + W^T W / s^2)^-1 and A = S W^T / s^2, which the encoder encodes.
    """
    s, d, k = 0.5, 4, 2
    q, _ = torch.linalg.qr(torch.randn(d, k, generator=gen(seed)))
    w, b = q * torch.tensor([1.5, 0.8]), torch.randn(d, generator=gen(seed + 1))
    cov_post = torch.diag(1.0 / (1.0 + (w * w).sum(0) / s**2))
    a = cov_post @ w.T / s**2
    vae = VAE(
        ModelConfig(input_dim=d, hidden=(), latent_dim=k, likelihood="gaussian", gaussian_std="fixed", fixed_std=s)
    )
    with torch.no_grad():
        vae.decoder_head.weight.copy_(w)
        vae.decoder_head.bias.copy_(b)
        vae.encoder_head.weight.copy_(torch.cat([a, torch.zeros(k, d)]))
        vae.encoder_head.bias.copy_(torch.cat([-a @ b, torch.diagonal(cov_post).log()]))
    return vae, w @ w.T + s**2 * torch.eye(d), b


def test_elbo_is_exact_when_the_encoder_is_the_true_posterior():
    vae, cov, b = linear_gaussian_vae()
    x = torch.randn(6, 4, generator=gen(5)) * 2
    log_px = MultivariateNormal(b, cov).log_prob(x)
    # With q = p(z|x), log p(x|z) + log p(z) - log q(z|x) = log p(x) for every single draw z ...
    exact = elbo_terms(vae, x, samples=7, kl="mc", generator=gen(6)).per_sample_elbo
    torch.testing.assert_close(exact, log_px.expand(7, -1), rtol=1e-4, atol=1e-4)
    # ... while the analytic-KL estimator equals it only on average over draws.
    draws = elbo_terms(vae, x, samples=20_000, kl="analytic", generator=gen(6)).per_sample_elbo
    stderr = draws.std(0) / math.sqrt(draws.shape[0])
    assert torch.all((draws.mean(0) - log_px).abs() < 5 * stderr)
    torch.testing.assert_close(log_importance_weights(vae, x, 5, gen(7)), log_px.expand(5, -1), rtol=1e-4, atol=1e-4)


def test_iwae_with_one_sample_is_the_elbo_and_more_samples_tighten_the_bound():
    torch.manual_seed(0)
    vae = VAE(ModelConfig(input_dim=6, hidden=(8,), latent_dim=2))
    x = torch.rand(5, 6, generator=gen(8))
    iwae1 = iwae_terms(vae, x, 1, gen(9))
    elbo1 = elbo_terms(vae, x, 1, kl="mc", generator=gen(9))
    torch.testing.assert_close(iwae1.loss, elbo1.loss)
    log_w = log_importance_weights(vae, x, 64, gen(10))
    assert torch.all(iwae_bound(log_w) >= log_w.mean(0))  # log-mean-exp >= mean (Jensen), draw by draw


@pytest.mark.parametrize("kl", ["analytic", "mc"])
def test_variance_of_the_elbo_estimate_falls_as_k_grows(kl):
    torch.manual_seed(0)
    vae = VAE(ModelConfig(input_dim=16, hidden=(16,), latent_dim=4))
    x = torch.rand(8, 16, generator=gen(11))
    repeats, variances = 1000, []
    with torch.no_grad():
        for k in (1, 4, 16):
            # `repeats` independent K-sample estimates of the batch's ELBO, drawn in one call: (repeats * K, B) draws.
            draws = elbo_terms(vae, x, k * repeats, kl=kl, generator=gen(k)).per_sample_elbo
            estimates = draws.view(repeats, k, -1).mean(dim=(1, 2))
            variances.append(estimates.var().item())
    assert variances[0] > variances[1] > variances[2]
    # Averaging K independent draws divides the variance by K; allow for the noise of 1000 repeats (about 5%).
    assert 12 < variances[0] / variances[2] < 21
    assert 3 < variances[0] / variances[1] < 5.3


def test_mean_latent_decodes_mu_and_is_deterministic():
    torch.manual_seed(0)
    vae = VAE(ModelConfig(input_dim=6, hidden=(8,), latent_dim=2))
    x = torch.rand(3, 6, generator=gen(12))
    first, second = (
        elbo_terms(vae, x, 5, latent="mean", generator=gen(1)),
        elbo_terms(vae, x, 5, latent="mean", generator=gen(2)),
    )
    assert first.per_sample_elbo.shape == (1, 3)
    torch.testing.assert_close(first.loss, second.loss, rtol=0, atol=0)
    mu, logvar = vae.encode(x)
    expected = vae.log_likelihood(x, vae.decode(mu)) - gaussian_kl(mu, logvar).sum(-1)
    torch.testing.assert_close(first.per_sample_elbo[0], expected.detach())
