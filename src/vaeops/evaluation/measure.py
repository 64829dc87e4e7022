"""What the evaluate stage measures on one model, and how models and training seeds are compared.

Each number has its own image set, fixed by evaluate.seed: the reconstructions and the Jensen gap use every image of
the split, the NLL and ELBO a seeded subset of `nll_images`, the K study a seeded subset of `study_images`.
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

STUDY_ROWS, NLL_ROWS = 7, 8  # streams of the subset draws (the estimators use 0, 1, 2..; the pictures 90, 91)


def subset(count: int, size: int | None, seed: int, stream: int) -> np.ndarray:
    """Sorted indices of a fixed, seeded subset of `size` images (all of them when size is None or not smaller)."""
    if size is None or size >= count:
        return np.arange(count)
    return np.sort(np.random.default_rng([seed, stream]).permutation(count)[:size])


def work(images: int, nll_images: int, study_images: int, cfg: EvaluateParams) -> float:
    """Decoder draws one model's measurement takes: the progress bar's total."""
    return (
        images * (cfg.recon_samples + 1) + nll_images * cfg.nll_k + study_images * cfg.elbo_repeats * sum(cfg.elbo_ks)
    )


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
        "elbo": bound.elbo.double().cpu().numpy(),
        "recon_term": bound.mean_log_likelihood.double().cpu().numpy(),
        "kl": bound.kl.double().cpu().numpy(),
    }


def measure(
    model: VAE,
    x: torch.Tensor,
    nll_rows: np.ndarray,
    study_rows: np.ndarray,
    cfg: EvaluateParams,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Every estimate for one model: a seed's headline quantities, plus the K study and the latents."""
    headline_numbers = replicate(model, x, nll_rows, cfg, progress)
    study = k_study(
        model,
        x[study_rows],
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


def _mean_se(values: np.ndarray) -> tuple[float, float]:
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


def headline(m: dict[str, Any], pixels: int) -> dict[str, Any]:
    """The numbers of one model that go to metrics.json: flat, so `dvc metrics diff` can list them."""
    nll, nll_se = _mean_se(m["nll"])
    gap, gap_se = _mean_se(m["recon"]["jensen_gap"])
    out: dict[str, Any] = {
        "nll": nll,
        "nll_se": nll_se,
        "nll_bits_per_dim": nll / (pixels * np.log(2)),
        "elbo": float(m["elbo"].mean()),
        "recon_term": float(m["recon_term"].mean()),
        "kl": float(m["kl"].mean()),
        "bound_gap": float((-m["nll"] - m["elbo"]).mean()),
        "log_px_mu": float(m["recon"]["log_px_mu"].mean()),
        "e_log_px": float(m["recon"]["e_log_px"].mean()),
        "jensen_gap": gap,
        "jensen_gap_se": gap_se,
        "nll_remaining_bias": claims.remaining_bias(m["study"]),
        "code_norm": m["code_norm"],
    }
    for error in ("bce", "se"):
        summary = paired_summary(m["recon"][f"{error}_sampled"], m["recon"][f"{error}_mean_decode"])
        out[f"{error}_mean_decode"] = float(m["recon"][f"{error}_mean_decode"].mean())
        out[f"{error}_sampled"] = float(m["recon"][f"{error}_sampled"].mean())
        out.update({f"{error}_{key}": value for key, value in summary.items() if key != "share_positive"})
        out[f"{error}_share_mean_decode_better"] = summary["share_positive"]  # sampled - mean > 0: the mean wins
    first, last = m["study"][0], m["study"][-1]
    out.update({"elbo_std_k_first": first["elbo_std_image"], "elbo_std_k_last": last["elbo_std_image"]})
    health = m["health"]
    out.update({key: health[key] for key in ("latent_dim", "active_units", "collapsed_dims", "mean_posterior_std")})
    out["collapsed"] = health["posterior_collapsed"]
    return out


def compare(reference: dict[str, Any], other: dict[str, Any]) -> dict[str, float]:
    """Another model against the reference (`vae`) on the same images: paired NLL and mean-decode cross-entropy."""
    nll = paired_summary(other["nll"], reference["nll"])
    bce = paired_summary(other["recon"]["bce_mean_decode"], reference["recon"]["bce_mean_decode"])
    return {
        "nll_minus_vae": nll["diff_mean"],
        "nll_diff_se": nll["diff_se"],
        "nll_diff_ci95_low": nll["diff_ci95_low"],
        "nll_diff_ci95_high": nll["diff_ci95_high"],
        "share_images_vae_better": nll["share_positive"],
        "bce_mean_decode_minus_vae": bce["diff_mean"],
        "bce_diff_ci95_low": bce["diff_ci95_low"],
        "bce_diff_ci95_high": bce["diff_ci95_high"],
    }


def seed_spread(runs: dict[str, dict[int, dict[str, Any]]], reference: str) -> dict[str, Any]:
    """Per model, each headline quantity per training seed with its 95% interval across seeds; per other model, the
    NLL and mean-decode differences to the reference model of the same seed."""
    out: dict[str, Any] = {"models": {}, "comparisons": {}}
    for name, by_seed in runs.items():
        values = {
            "nll": [float(r["nll"].mean()) for r in by_seed.values()],
            "bce_diff_mean": [
                float((r["recon"]["bce_sampled"] - r["recon"]["bce_mean_decode"]).mean()) for r in by_seed.values()
            ],
            "jensen_gap": [float(r["recon"]["jensen_gap"].mean()) for r in by_seed.values()],
            "bce_mean_decode": [float(r["recon"]["bce_mean_decode"].mean()) for r in by_seed.values()],
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
            "bce_mean_decode_minus_vae": _spread(
                [
                    float((by_seed[s]["recon"]["bce_mean_decode"] - ref[s]["recon"]["bce_mean_decode"]).mean())
                    for s in shared
                ]
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
    }
