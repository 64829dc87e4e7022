"""What the evaluate stage measures on one model, and how models and training seeds are compared.

Two passes, each with its own images and draws (fixed by evaluate.seed): the reconstruction pass (log p(x|mu),
E_q[log p(x|z)], the predictive mean, the Jensen gap) on every image of the split with S draws each; the density
pass (NLL, ELBO, KL) and the K study on one seeded subset of `nll_images`, the study's largest K being the NLL's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from vaeops.core.params import EvaluateParams
from vaeops.core.progress import Progress
from vaeops.evaluation import claims
from vaeops.evaluation.latent_health import latent_health
from vaeops.model.estimators import (
    encode_all,
    k_study,
    paired_summary,
    reconstruction_errors,
    sample_stats,
)
from vaeops.model.vae import VAE

NLL_ROWS = 8  # the stream of the subset draws (the estimators use 0, 1, 2..; the pictures 90, 91)


def subset(count: int, size: int | None, seed: int, stream: int) -> np.ndarray:
    """Sorted indices of a fixed, seeded subset of `size` images (all of them when size is None or not smaller)."""
    if size is None or size >= count:
        return np.arange(count)
    return np.sort(np.random.default_rng([seed, stream]).permutation(count)[:size])


def work(images: int, nll_images: int, cfg: EvaluateParams) -> float:
    """Decoder draws one model's measurement takes: the progress bar's total."""
    return images * (cfg.recon_samples + 1) + nll_images * (cfg.nll_k + cfg.elbo_repeats * sum(cfg.elbo_ks))


def replicate(
    model: VAE, x: torch.Tensor, nll_rows: np.ndarray, cfg: EvaluateParams, progress: Progress | None = None
) -> dict[str, Any]:
    """The headline quantities of one training seed: the reconstructions and the NLL bound, on the same images and
    draws as every other seed and model."""
    recon = reconstruction_errors(
        model, x, cfg.recon_samples, cfg.seed, chunk_images=cfg.chunk_images, progress=progress
    )
    bound = sample_stats(
        model,
        x[nll_rows],
        cfg.nll_k,
        cfg.seed,
        0,
        cfg.chunk_images,
        cfg.chunk_samples,
        precision=cfg.precision,
        progress=progress,
    )
    return {
        "recon": recon,
        "nll": (-bound.iwae).double().cpu().numpy(),
        "nll_rise": (bound.iwae - bound.iwae_tenth).double().cpu().numpy(),
        "elbo": bound.elbo.double().cpu().numpy(),
        "kl": bound.kl.double().cpu().numpy(),
    }


def measure(
    model: VAE,
    x: torch.Tensor,
    nll_rows: np.ndarray,
    cfg: EvaluateParams,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Every estimate for one model: a seed's headline quantities, plus the K study and the latents."""
    headline_numbers = replicate(model, x, nll_rows, cfg, progress)
    study = k_study(
        model,
        x[nll_rows],  # the NLL's images: the study's points and the NLL estimate describe the same set
        cfg.elbo_ks,
        cfg.elbo_repeats,
        cfg.seed,
        cfg.chunk_images,
        cfg.chunk_samples,
        cfg.precision,
        progress,
    )
    mu, logvar = encode_all(model, x, cfg.chunk_images)
    return {
        **headline_numbers,
        "study": study,
        "health": latent_health(mu, logvar, cfg.active_threshold, cfg.collapse_kl),
        "mu": mu.double().cpu().numpy(),
        "code_norm": float(mu.norm(dim=1).mean()),
    }


def over_images(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and its normal 95% interval over the test images (the finite set measured, with the draws it had)."""
    mean = float(values.mean())
    half = 1.96 * float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
    return mean, mean - half, mean + half


def headline(m: dict[str, Any], pixels: int) -> dict[str, Any]:
    """The numbers of one model that go to metrics.json: flat, so `dvc metrics diff` can list them. Density numbers
    come from the NLL pass (nll_images, K draws), reconstruction numbers from the reconstruction pass (every image,
    S draws): each table of the report takes its rows from one of the two."""
    nll, nll_low, nll_high = over_images(m["nll"])
    recon = m["recon"]
    gap, gap_low, gap_high = over_images(recon["jensen_gap"])
    rise = float(m["nll_rise"].mean())
    out: dict[str, Any] = {
        "nll": nll,
        "nll_ci95_low": nll_low,
        "nll_ci95_high": nll_high,
        "nll_last_decade_rise": rise,
        "nll_converged": rise < claims.CONVERGED_RISE,
        "nll_bits_per_dim": nll / (pixels * np.log(2)),
        "elbo": float(m["elbo"].mean()),
        "kl": float(m["kl"].mean()),
        "bound_gap": float((-m["nll"] - m["elbo"]).mean()),
        "log_px_mu": float(recon["log_px_mu"].mean()),
        "e_log_px": float(recon["e_log_px"].mean()),
        "log_px_predictive": float(recon["log_px_predictive"].mean()),
        "jensen_gap": gap,
        "jensen_gap_ci95_low": gap_low,
        "jensen_gap_ci95_high": gap_high,
        # Monte-Carlo standard error of the mean gap, images fixed: sqrt(sum of per-image variances) / N
        "jensen_gap_mc_se": float(np.sqrt(recon["e_log_px_mc_var"].sum()) / len(recon["jensen_gap"])),
        "share_mean_decode_better": float(np.mean(recon["jensen_gap"] > 0)),
        "se_mean_decode": float(recon["se_mean_decode"].mean()),
        "se_sampled": float(recon["se_sampled"].mean()),
        "code_norm": m["code_norm"],
    }
    first, last = m["study"][0], m["study"][-1]
    out.update({"elbo_std_k_first": first["elbo_std_image"], "elbo_std_k_last": last["elbo_std_image"]})
    health = m["health"]
    out.update({key: health[key] for key in ("latent_dim", "active_units", "collapsed_dims", "mean_posterior_std")})
    out["collapsed"] = health["posterior_collapsed"]
    return out


def compare(reference: dict[str, Any], other: dict[str, Any]) -> dict[str, float]:
    """Another model against the reference (`vae`) on the same images and draws: paired NLL difference (> 0: the
    reference has the lower estimate) and paired log p(x|mu) difference (> 0: `other`'s mean decode is better)."""
    nll = paired_summary(other["nll"], reference["nll"])
    recon = paired_summary(other["recon"]["log_px_mu"], reference["recon"]["log_px_mu"])
    return {
        "nll_minus_vae": nll["diff_mean"],
        "nll_diff_ci95_low": nll["diff_ci95_low"],
        "nll_diff_ci95_high": nll["diff_ci95_high"],
        "share_images_vae_better": nll["share_positive"],
        "log_px_mu_minus_vae": recon["diff_mean"],
        "log_px_mu_diff_ci95_low": recon["diff_ci95_low"],
        "log_px_mu_diff_ci95_high": recon["diff_ci95_high"],
    }


def seed_spread(runs: dict[str, dict[int, dict[str, Any]]], reference: str) -> dict[str, Any]:
    """Per model, each headline quantity per training seed with its 95% interval across seeds; per other model, the
    NLL and mean-decode differences to the reference model of the same seed."""
    out: dict[str, Any] = {"models": {}, "comparisons": {}}
    for name, by_seed in runs.items():
        values = {
            "nll": [float(r["nll"].mean()) for r in by_seed.values()],
            "jensen_gap": [float(r["recon"]["jensen_gap"].mean()) for r in by_seed.values()],
            "log_px_mu": [float(r["recon"]["log_px_mu"].mean()) for r in by_seed.values()],
        }
        out["models"][name] = {"seeds": list(by_seed), **{k: _spread(v) for k, v in values.items()}}
    ref = runs.get(reference, {})
    for name, by_seed in runs.items():
        shared = [seed for seed in by_seed if seed in ref]
        if name == reference or not shared:
            continue
        out["comparisons"][name] = {
            "seeds": shared,
            "nll_minus_vae": _spread([float((by_seed[s]["nll"] - ref[s]["nll"]).mean()) for s in shared]),
            "log_px_mu_minus_vae": _spread(
                [float((by_seed[s]["recon"]["log_px_mu"] - ref[s]["recon"]["log_px_mu"]).mean()) for s in shared]
            ),
        }
    return out


def _spread(values: list[float]) -> dict[str, Any]:
    interval = claims.seed_interval(values)
    return {
        "values": values,
        "mean": float(np.mean(values)),
        "sd": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
        "ci95_low": interval[0] if interval else None,
        "ci95_high": interval[1] if interval else None,
        "sign_test_p": claims.sign_test(values),
    }
