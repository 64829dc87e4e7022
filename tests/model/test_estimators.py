"""Estimators against a trusted reference: a linear-Gaussian VAE whose log p(x) and ELBO have closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vaeops.core.errors import ParamsError
from vaeops.evaluation.latent_health import latent_health, pca_2d
from vaeops.model.devices import bf16_matmul_supported
from vaeops.model.estimators import (
    k_study,
    nll_estimate,
    paired_summary,
    reconstruction_errors,
    sample_stats,
)
from vaeops.model.vae import VAE, ModelConfig

D, L, S = 6, 2, 0.5


def linear_gaussian(exact: bool) -> tuple[VAE, torch.Tensor, torch.Tensor]:
    """p(z) = N(0, I), p(x|z) = N(Wz + b, S^2 I) with orthogonal columns in W, so the exact posterior is diagonal.

    exact=True sets the encoder to that posterior; exact=False shifts its mean and widens its variance.
    """
    gen = torch.Generator().manual_seed(1)
    q, _ = torch.linalg.qr(torch.randn(D, L, generator=gen, dtype=torch.float64))
    w = q * torch.tensor([1.5, 0.8], dtype=torch.float64)
    b = torch.randn(D, generator=gen, dtype=torch.float64) * 0.3
    model = VAE(ModelConfig(D, (), L, likelihood="gaussian", gaussian_std="fixed", fixed_std=S)).double()
    post_var = 1.0 / (1.0 + (w**2).sum(0) / S**2)  # (L,)
    enc_w = post_var[:, None] * w.T / S**2  # (L, D)
    with torch.no_grad():
        model.decoder_head.weight.copy_(w)
        model.decoder_head.bias.copy_(b)
        weight = torch.zeros(2 * L, D, dtype=torch.float64)
        bias = torch.zeros(2 * L, dtype=torch.float64)
        weight[:L] = enc_w * (1.0 if exact else 0.7)
        bias[:L] = -enc_w @ b + (0.0 if exact else 0.2)
        bias[L:] = torch.log(post_var) + (0.0 if exact else 0.8)
        model.encoder_head.weight.copy_(weight)
        model.encoder_head.bias.copy_(bias)
    return model.eval(), w, b


def log_marginal(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Closed form: log p(x) = log N(x; b, W W^T + S^2 I)."""
    cov = w @ w.T + S**2 * torch.eye(D, dtype=torch.float64)
    return torch.distributions.MultivariateNormal(b, covariance_matrix=cov).log_prob(x)


def closed_form_elbo(model: VAE, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Closed form: E_q[log p(x|z)] - KL(q || p) for the model's Gaussian encoder."""
    with torch.no_grad():
        mu, logvar = model.encode(x)
    var = logvar.exp()
    resid = ((x - mu @ w.T - b) ** 2).sum(-1) + (var * (w**2).sum(0)).sum(-1)
    expected_ll = -0.5 * D * math.log(2 * math.pi * S**2) - resid / (2 * S**2)
    kl = 0.5 * (mu**2 + var - 1 - logvar).sum(-1)
    return expected_ll - kl


def data(n: int = 200) -> torch.Tensor:
    return torch.randn(n, D, generator=torch.Generator().manual_seed(2), dtype=torch.float64)


def test_exact_posterior_makes_every_bound_tight():
    model, w, b = linear_gaussian(exact=True)
    x = data(50)
    truth = log_marginal(x, w, b)
    for k in (1, 7):
        stats = sample_stats(model, x, k, seed=0, chunk_images=16, chunk_samples=3)
        assert torch.allclose(stats.iwae, truth, atol=1e-8)  # every weight w_k equals p(x) exactly
    assert torch.allclose(closed_form_elbo(model, x, w, b), truth, atol=1e-8)


def test_elbo_estimate_matches_closed_form_within_monte_carlo_error():
    model, w, b = linear_gaussian(exact=False)
    x = data()
    stats = sample_stats(model, x, 400, seed=3, chunk_images=32, chunk_samples=64)
    diff = (stats.elbo - closed_form_elbo(model, x, w, b)).numpy()
    assert abs(diff.mean()) < 4 * diff.std(ddof=1) / math.sqrt(len(diff)) + 1e-9
    # each image's 400-sample estimate is close, not just the average: within 6 standard errors of a 400-sample
    # mean, from the spread of single-draw estimates (RMS over images; some images have a wider spread than others)
    single_draw_spread = k_study(model, x, [1], repeats=100, seed=5)[0]["elbo_std_image"]
    assert np.abs(diff).max() < 6 * single_draw_spread / math.sqrt(400)


def test_iwae_bound_is_ordered_and_rises_towards_log_px():
    model, w, b = linear_gaussian(exact=False)
    x = data()
    truth = float(log_marginal(x, w, b).mean())
    rows = k_study(model, x, [1, 10, 100], repeats=4, seed=4, chunk_images=64, chunk_samples=32)
    iwae = [row["iwae_mean"] for row in rows]
    elbo_closed = float(closed_form_elbo(model, x, w, b).mean())
    mc_error = rows[0]["iwae_std_image"] / math.sqrt(4 * len(x))
    assert abs(iwae[0] - elbo_closed) < 4 * mc_error  # L_1 is an unbiased ELBO estimate
    assert all(abs(row["elbo_mean"] - elbo_closed) < 4 * row["elbo_std_image"] / math.sqrt(4 * len(x)) for row in rows)
    assert iwae[0] < iwae[1] < iwae[2] <= truth + 0.01
    assert truth - iwae[2] < 0.25 * (truth - iwae[0])  # most of the gap is closed by K = 100
    # more samples, less noise: the per-image spread of the ELBO shrinks roughly like 1 / sqrt(K)
    spreads = [row["elbo_std_image"] for row in rows]
    assert spreads[0] > 2.5 * spreads[1] > 2.5 * 2.5 * spreads[2]
    nll = nll_estimate(model, x, 1000, seed=5, chunk_images=64, chunk_samples=256)
    assert -nll["nll_nats"] == pytest.approx(truth, abs=0.03)
    assert nll["nll_bits_per_dim"] == pytest.approx(nll["nll_nats"] / (D * math.log(2)))


def test_log_sum_exp_stays_finite_for_huge_log_weights():
    model, _, _ = linear_gaussian(exact=False)
    x = data(8) * 1e3  # log w around -1e7: exp underflows, the streamed log-sum-exp must not
    stats = sample_stats(model, x, 50, seed=0, chunk_images=4, chunk_samples=7)
    assert torch.isfinite(stats.iwae).all()
    assert (stats.iwae >= stats.elbo - 1e-6 * stats.elbo.abs()).all()


def test_mean_and_sampled_decode_agree_when_encoder_variance_vanishes():
    model, _, _ = linear_gaussian(exact=False)
    with torch.no_grad():
        model.encoder_head.bias[L:] = -60.0  # sigma = e^-30
    x = torch.rand(40, D, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    errors = reconstruction_errors(model, x, samples=8, seed=0, chunk_images=16)
    for name in ("bce", "se"):
        np.testing.assert_allclose(errors[f"{name}_sampled"], errors[f"{name}_mean_decode"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(errors["jensen_gap"], 0.0, atol=1e-9)


def test_jensen_gap_matches_closed_form_for_linear_gaussian():
    # log p(x|mu) - E_q[log p(x|z)] = sum_j var_j |W_j|^2 / (2 S^2) exactly for a linear-Gaussian decoder
    model, w, _ = linear_gaussian(exact=False)
    x = torch.rand(100, D, generator=torch.Generator().manual_seed(7), dtype=torch.float64)  # pixels in [0, 1]
    errors = reconstruction_errors(model, x, samples=2000, seed=1, chunk_images=50)
    with torch.no_grad():
        _, logvar = model.encode(x)
    expected = ((logvar.exp() * (w**2).sum(0)).sum(-1) / (2 * S**2)).numpy()
    assert errors["jensen_gap"].mean() == pytest.approx(expected.mean(), rel=0.05)
    assert (errors["se_sampled"] > errors["se_mean_decode"]).all()


def test_the_gap_is_the_reconstruction_loss_difference_and_the_predictive_mean_scores_at_least_e_q():
    # Bernoulli: -log p(x|z) is the cross-entropy, so sampled - mean decode cross-entropy IS the Jensen gap, per image
    torch.manual_seed(3)
    model = VAE(ModelConfig(30, (16,), 3)).double().eval()
    x = torch.rand(40, 30, dtype=torch.float64)
    errors = reconstruction_errors(model, x, samples=12, seed=2, chunk_images=16)
    np.testing.assert_allclose(errors["bce_sampled"] - errors["bce_mean_decode"], errors["jensen_gap"], atol=1e-9)
    assert (errors["log_px_predictive"] >= errors["e_log_px"] - 1e-9).all()  # concave in the pixel means
    # fixed-variance Gaussian: the squared-error difference over 2 S^2 is the gap
    gaussian, _, _ = linear_gaussian(exact=False)
    xg = torch.rand(40, D, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    g = reconstruction_errors(gaussian, xg, samples=12, seed=2, chunk_images=16)
    np.testing.assert_allclose((g["se_sampled"] - g["se_mean_decode"]) / (2 * S**2), g["jensen_gap"], atol=1e-9)
    assert (g["log_px_predictive"] >= g["e_log_px"] - 1e-9).all()
    assert (g["e_log_px_mc_var"] > 0).all()


def test_the_nested_l_k_over_10_is_the_same_estimate_on_the_first_draws():
    torch.manual_seed(0)
    model = VAE(ModelConfig(30, (16,), 3)).eval()
    x = torch.rand(20, 30)
    full = sample_stats(model, x, 80, seed=4, chunk_images=8, chunk_samples=8)
    tenth = sample_stats(model, x, 8, seed=4, chunk_images=8, chunk_samples=8)
    torch.testing.assert_close(full.iwae_tenth, tenth.iwae)
    assert (full.iwae >= full.iwae_tenth - 0.5).all()  # more draws: a tighter bound, up to Monte-Carlo noise


def test_fast_bernoulli_path_equals_model_likelihood():
    torch.manual_seed(0)
    model = VAE(ModelConfig(30, (16,), 3)).eval()
    x = (torch.rand(5, 30) < 0.4).float()
    z = torch.randn(7, 5, 3)
    with torch.no_grad():
        expected = model.log_likelihood(x, model.decode(z))
        fast = model.log_likelihood_fn(x)(z)
    torch.testing.assert_close(fast, expected, rtol=1e-5, atol=1e-4)


def test_same_seed_same_numbers_whatever_the_worker_count():
    torch.manual_seed(0)
    model = VAE(ModelConfig(30, (16,), 3)).eval()
    x = torch.rand(70, 30)
    one = sample_stats(model, x, 20, seed=9, chunk_images=16, chunk_samples=8, workers=1)
    two = sample_stats(model, x, 20, seed=9, chunk_images=16, chunk_samples=8, workers=3)
    assert torch.equal(one.iwae, two.iwae)
    # On an AMD EPYC (Zen 4) KVM guest the last bit of a few KL and mean log-likelihood values of the final, partial
    # chunk changed in about 1 run in 8 with three concurrent workers (never with one); the cause is not found yet.
    torch.testing.assert_close(one.elbo, two.elbo, rtol=0, atol=1e-5)
    other = sample_stats(model, x, 20, seed=10, chunk_images=16, chunk_samples=8)
    assert not torch.equal(one.iwae, other.iwae)


def test_paired_summary():
    sampled = np.array([2.0, 3.0, 4.0, 5.0])
    mean = np.array([1.0, 1.0, 5.0, 4.0])
    out = paired_summary(sampled, mean)
    diff = sampled - mean
    assert out["diff_mean"] == pytest.approx(diff.mean())
    assert out["diff_se"] == pytest.approx(diff.std(ddof=1) / 2)
    assert out["diff_ci95_low"] == pytest.approx(diff.mean() - 1.96 * out["diff_se"])
    assert out["share_positive"] == pytest.approx(0.75)


def test_latent_health_counts_active_and_collapsed_units():
    gen = torch.Generator().manual_seed(0)
    n = 5000
    mu = torch.stack([torch.randn(n, generator=gen), 0.05 * torch.randn(n, generator=gen), torch.zeros(n)], 1)
    logvar = torch.stack([torch.full((n,), -2.0), torch.full((n,), -0.5), torch.zeros(n)], 1)
    health = latent_health(mu, logvar, active_threshold=0.01, collapse_kl=0.01)
    assert health["active_units"] == 1  # variances ~1, ~0.0025, 0
    assert health["collapsed_dims"] == 1 and not health["posterior_collapsed"]
    assert health["kl_per_dim"][2] == pytest.approx(0.0)
    assert health["kl_per_dim"][0] == pytest.approx(0.5 * (1 + math.exp(-2) - 1 + 2), rel=0.05)
    collapsed = latent_health(torch.zeros(10, 3), torch.zeros(10, 3))
    assert collapsed["posterior_collapsed"] and collapsed["active_units"] == 0


def test_pca_2d_keeps_the_widest_directions():
    gen = np.random.default_rng(0)
    points = gen.normal(size=(500, 5)) * np.array([5.0, 0.1, 3.0, 0.1, 0.1])
    projected, ratio = pca_2d(points)
    assert projected.shape == (500, 2) and ratio.sum() > 0.99
    assert pca_2d(points[:, :1])[0].shape == (500, 2)


@pytest.mark.skipif(not bf16_matmul_supported(torch.device("cpu")), reason="this CPU has no native bf16 matmuls")
def test_bf16_head_stays_close_to_fp32():
    torch.manual_seed(0)
    model = VAE(ModelConfig(64, (32,), 4)).eval()
    x = (torch.rand(40, 64) < 0.3).float()
    exact = sample_stats(model, x, 200, seed=0, chunk_images=8, chunk_samples=50)
    fast = sample_stats(model, x, 200, seed=0, chunk_images=8, chunk_samples=50, precision="bf16")
    assert not torch.equal(exact.iwae, fast.iwae)  # the bf16 path really ran
    assert (exact.iwae - fast.iwae).abs().mean() < 0.05
    torch.testing.assert_close(exact.kl, fast.kl, rtol=0, atol=0)  # the encoder stays fp32


def test_bf16_is_refused_on_a_cpu_without_native_bf16(monkeypatch):
    for check in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        monkeypatch.setattr(torch.cpu, check, lambda: False, raising=False)
    model = VAE(ModelConfig(64, (32,), 4)).eval()
    with pytest.raises(ParamsError, match="native bf16"):
        sample_stats(model, torch.rand(4, 64), 2, seed=0, precision="bf16")


def test_unknown_precision_is_a_params_error():
    model, _, _ = linear_gaussian(exact=True)
    with pytest.raises(ParamsError, match="precision"):
        sample_stats(model, data(4), 2, seed=0, precision="fp8")
