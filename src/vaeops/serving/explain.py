"""Why sample z, for one image: its mean and sampled decodes and the numbers behind them, from the exported graphs.

For an image x: the decode of z = mu, decodes of draws z ~ q(z|x), their average and per-pixel spread; the plug-in
log p(x|mu) against the Monte-Carlo E_q[log p(x|z)] (the Jensen gap, with the sign it has), the KL, and the ELBO_K
and importance-weighted L_K estimates for each K with their spread over repeats. Bernoulli models only: the decoder
graph gives pixel probabilities p, and log p(x|z) = sum x log p + (1 - x) log(1 - p), with p kept inside
[1e-7, 1 - 1e-7] (the graphs output probabilities, not logits, so a saturated pixel is scored at that bound).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from vaeops.core.errors import BatchTooLarge, InputError
from vaeops.serving.inference import OnnxVAE
from vaeops.serving.inputs import as_array, check_int

EPS = 1e-7
LOG_2PI = math.log(2 * math.pi)


def bernoulli_log_likelihood(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    """log p(x|z) per row of decoded probabilities p (..., D) for the image x (D,), in float64."""
    p = np.clip(p.astype(np.float64), EPS, 1 - EPS)
    return (x * np.log(p) + (1 - x) * np.log1p(-p)).sum(axis=-1)


def estimators(log_px: np.ndarray, z: np.ndarray, mu: np.ndarray, logvar: np.ndarray, kl: float) -> tuple[float, float]:
    """ELBO_K (mean log-likelihood minus the analytic KL, as in training) and L_K of one set of K draws."""
    log_pz = -0.5 * (z**2 + LOG_2PI).sum(axis=-1)
    log_qz = -0.5 * (((z - mu) ** 2) / np.exp(logvar) + logvar + LOG_2PI).sum(axis=-1)
    log_w = log_px + log_pz - log_qz
    top = log_w.max()
    return float(log_px.mean() - kl), float(top + np.log(np.exp(log_w - top).mean()))


def explain(
    model: OnnxVAE, image: Any, samples: int, seed: int, ks: list[int], repeats: int, max_draws: int
) -> dict[str, Any]:
    """Every number and picture the page shows for one image (see the module docstring)."""
    if model.manifest.likelihood != "bernoulli":
        raise InputError("explain needs a Bernoulli model: the exported decoder gives no likelihood for a Gaussian one")
    samples = check_int(samples, "samples", 2, model.max_samples)
    seed = check_int(seed, "seed", 0)
    repeats = check_int(repeats, "repeats", 2, 50)
    if not ks or len(ks) > 12:
        raise InputError(f"ks must list 1 to 12 sample counts, got {len(ks)}")
    ks = [check_int(k, "each K in ks", 1) for k in ks]
    draws = samples + repeats * sum(ks)
    if draws > max_draws:
        raise BatchTooLarge(f"samples + repeats x sum(ks) = {draws} decoder runs, above the limit of {max_draws}")
    array = as_array(image, "image")
    if array.shape not in (tuple(model.image_shape), (model.input_dim,)):
        raise InputError(
            f"image has shape {list(array.shape)}; explain takes one image, {list(model.image_shape)} "
            f"or [{model.input_dim}]"
        )
    x = array.reshape(1, -1)
    out = model.run_graph("encoder", {"x": x})  # the library's checks: dtype, NaN, range
    x = x.astype(np.float32)
    mu, logvar = out["mu"][0].astype(np.float64), out["logvar"][0].astype(np.float64)
    sigma = np.exp(0.5 * logvar)
    kl = float(0.5 * (mu**2 + sigma**2 - 1 - logvar).sum())
    xd = x[0].astype(np.float64)
    rng = np.random.default_rng(seed)

    mean_decode = model.decode_many(mu[None])
    z = mu + sigma * rng.standard_normal((samples, mu.size))
    decoded = model.decode_many(z)
    log_px_mu = float(bernoulli_log_likelihood(xd, mean_decode)[0])
    log_px = bernoulli_log_likelihood(xd, decoded)
    e_log_px, se = float(log_px.mean()), float(log_px.std(ddof=1) / math.sqrt(samples))

    rows = []
    for k in ks:
        zk = mu + sigma * rng.standard_normal((repeats, k, mu.size))
        lk = bernoulli_log_likelihood(xd, model.decode_many(zk.reshape(-1, mu.size))).reshape(repeats, k)
        pairs = np.array([estimators(lk[r], zk[r], mu, logvar, kl) for r in range(repeats)])
        rows.append(
            {
                "k": k,
                "elbo_mean": float(pairs[:, 0].mean()),
                "elbo_std": float(pairs[:, 0].std(ddof=1)),
                "iwae_mean": float(pairs[:, 1].mean()),
                "iwae_std": float(pairs[:, 1].std(ddof=1)),
            }
        )

    def picture(values: np.ndarray) -> list:
        return np.asarray(values, dtype=np.float32).reshape(array.shape).tolist()

    return {
        "model_version": model.manifest.model_version,
        "seed": seed,
        "samples": samples,
        "original": picture(x[0]),
        "mean_decode": picture(mean_decode[0]),
        "sampled_decodes": [picture(row) for row in decoded],
        "sample_average": picture(decoded.mean(axis=0)),
        "sample_std": picture(decoded.std(axis=0)),
        "log_px_mu": log_px_mu,
        # the posterior predictive mean x_bar, the average decoded image: at least E_q[log p(x|z)] (concavity)
        "log_px_predictive": float(bernoulli_log_likelihood(xd, decoded.mean(axis=0))),
        "log_px_samples": log_px.tolist(),
        "e_log_px": e_log_px,
        "e_log_px_se": se,
        "jensen_gap": log_px_mu - e_log_px,
        "jensen_gap_se": se,
        "kl": kl,
        "plugin_elbo": log_px_mu - kl,
        "elbo": e_log_px - kl,
        "estimators": rows,
    }
