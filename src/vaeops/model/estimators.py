"""Batched Monte-Carlo estimators on a trained VAE: reconstruction errors, the Jensen gap, ELBO_K, IWAE L_K and NLL.

Every estimator streams over chunks of images and chunks of samples (one decoder matmul per chunk, no per-sample
Python loop) and keeps a running log-sum-exp, so memory does not grow with K: a few MB per worker for any K.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
from torch.nn import functional as F

from vaeops.core.progress import Progress
from vaeops.model import devices
from vaeops.model.objectives import (
    gaussian_kl,
    log_prior_ratio,
    reparameterize,
    sample_latents,
)
from vaeops.model.vae import VAE, bernoulli_log_prob

PIXEL_EPS = 1e-6  # clip for the pixel-space cross-entropy of Gaussian means, which may leave [0, 1]
T = TypeVar("T")


@dataclass(frozen=True)
class SampleStats:
    """Per-image results of K draws z_k ~ q(z|x); every field has shape (N,)."""

    iwae: torch.Tensor  # L_K = log (1/K) sum_k w_k, w_k = p(x, z_k) / q(z_k | x)
    iwae_tenth: torch.Tensor  # L_{K/10} from the first K/10 of the same draws: L_K - L_{K/10} is the last decade's rise
    mean_log_likelihood: torch.Tensor  # (1/K) sum_k log p(x | z_k): the ELBO's reconstruction term
    kl: torch.Tensor  # KL(q(z|x) || p(z)) in closed form

    @property
    def elbo(self) -> torch.Tensor:
        """The K-sample ELBO estimate with the analytic KL (Kingma & Welling's estimator B, as in training)."""
        return self.mean_log_likelihood - self.kl


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


def chunk_generator(seed: int, stream: int, chunk: int, device: torch.device) -> torch.Generator:
    """An independent generator per (seed, stream, image chunk): results do not depend on how many workers
    ran the chunks or in which order, and two models evaluated with one seed see the same noise."""
    return devices.generator(device, devices.derive_seed(seed, stream, chunk))


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _map_chunks(
    fn: Callable[[int, slice], T], chunks: Sequence[slice], device: torch.device, workers: int | None = None
) -> list[T]:
    """Run fn over image chunks; on CPU, in one single-threaded worker per core (None = every available core).

    Two workers with one intra-op thread each beat one worker with two threads on a shared machine: a busy
    core stalls every OpenMP barrier of the latter, but only its own worker in the former. Each chunk has its
    own generator, and every chunk runs on a single-threaded worker thread, a lone worker included (on an AMD
    Zen 4 guest, chunks computed on the main thread differed in the last bit from the same chunks computed on a
    worker thread), so the numbers do not depend on the worker count.
    """
    if device.type != "cpu":
        return [fn(i, rows) for i, rows in enumerate(chunks)]
    with (
        devices.intra_op_threads(1),
        ThreadPoolExecutor(max(1, min(workers or available_cores(), len(chunks)))) as pool,
    ):
        return list(pool.map(fn, range(len(chunks)), chunks))


def encode_all(model: VAE, x: torch.Tensor, chunk_images: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior means and log-variances (N, L) of every image, in chunks."""
    with torch.inference_mode():
        parts = [model.encode(x[rows]) for rows in _chunks(len(x), chunk_images)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def sample_stats(
    model: VAE,
    x: torch.Tensor,
    samples: int,
    seed: int,
    stream: int = 0,
    chunk_images: int = 64,
    chunk_samples: int = 128,
    workers: int | None = None,
    precision: str = "fp32",
    progress: Progress | None = None,
) -> SampleStats:
    """Draw `samples` latents per image and return L_K, L_{K/10} (nested), the mean log-likelihood and the KL.

    The log-sum-exp over samples is accumulated chunk by chunk with logaddexp, which stays exact and stable
    for any K; memory is chunk_images * chunk_samples * D floats per worker.
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")

    def run(index: int, rows: slice) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        generator = chunk_generator(seed, stream, index, x.device)
        with torch.inference_mode():
            xb = x[rows]
            mu, logvar = model.encode(xb)
            log_px = model.log_likelihood_fn(xb, head)
            lse = torch.full((len(xb),), -math.inf, dtype=mu.dtype, device=mu.device)
            lse_tenth = lse.clone()
            ll_sum = torch.zeros_like(lse)
            for cols in _chunks(samples, chunk_samples):
                z, eps = sample_latents(mu, logvar, cols.stop - cols.start, generator)
                ll = log_px(z)
                log_w = ll + log_prior_ratio(z, eps, logvar)
                lse = torch.logaddexp(lse, torch.logsumexp(log_w, dim=0))
                if cols.start < tenth:
                    lse_tenth = torch.logaddexp(lse_tenth, torch.logsumexp(log_w[: tenth - cols.start], dim=0))
                ll_sum += ll.sum(0)
                if progress is not None:
                    progress.update(len(xb) * (cols.stop - cols.start))
            return (
                lse - math.log(samples),
                lse_tenth - math.log(tenth),
                ll_sum / samples,
                gaussian_kl(mu, logvar).sum(-1),
            )

    tenth = max(1, samples // 10)
    head = model.decoder_head_fn(precision)  # checks the precision before any work, converts bf16 weights once
    parts = _map_chunks(run, _chunks(len(x), chunk_images), x.device, workers)
    return SampleStats(*(torch.cat([part[i] for part in parts]) for i in range(4)))


def predictive_log_likelihood(model: VAE, x: torch.Tensor, decoded: torch.Tensor) -> torch.Tensor:
    """log p(x | x_bar) for the posterior predictive mean x_bar = (1/S) sum_s E[x | z_s], the average decoded image
    of S draws (decoded: (S, B, D) decoder outputs). The log-likelihood is concave in the pixel means (Bernoulli
    probabilities, or Gaussian means at a fixed variance), so this is at least the average over the draws."""
    if model.config.likelihood == "bernoulli":
        mean = torch.sigmoid(decoded).mean(0).clamp(PIXEL_EPS, 1 - PIXEL_EPS)
        return model.log_likelihood(x, torch.log(mean) - torch.log1p(-mean))  # back to logits
    return model.log_likelihood(x, decoded.mean(0))


def _pixel_errors(model: VAE, x: torch.Tensor, decoded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Binary cross-entropy and squared error in pixel space, summed over pixels (shape of decoded minus D)."""
    target = x.expand_as(decoded)
    if model.config.likelihood == "bernoulli":
        bce = -bernoulli_log_prob(decoded, x)
        pixels = torch.sigmoid(decoded)
    else:
        pixels = model.pixel_mean(decoded)
        bce = F.binary_cross_entropy(pixels.clamp(PIXEL_EPS, 1 - PIXEL_EPS), target, reduction="none").sum(-1)
    return bce, (target - pixels).pow(2).sum(-1)


def reconstruction_errors(
    model: VAE,
    x: torch.Tensor,
    samples: int,
    seed: int,
    stream: int = 1,
    chunk_images: int = 64,
    progress: Progress | None = None,
) -> dict[str, np.ndarray]:
    """Per image: errors of the mean decode (z = mu) and the average error over S decodes of z ~ q(z|x),
    plus the plug-in log p(x|mu) against the S-sample estimate of E_q[log p(x|z)] and their gap."""
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")

    def run(index: int, rows: slice) -> dict[str, torch.Tensor]:
        generator = chunk_generator(seed, stream, index, x.device)
        with torch.inference_mode():
            xb = x[rows]
            mu, logvar = model.encode(xb)
            decoded_mu = model.decode(mu)
            decoded_z = model.decode(reparameterize(mu, logvar, samples, generator))  # (S, B, D)
            bce_mu, se_mu = _pixel_errors(model, xb, decoded_mu)
            bce_z, se_z = _pixel_errors(model, xb, decoded_z)
            log_px_mu = model.log_likelihood(xb, decoded_mu)
            log_px_z = model.log_likelihood(xb, decoded_z)  # (S, B): one value per draw
            e_log_px = log_px_z.mean(0)
            mc_var = log_px_z.var(0) / samples if samples > 1 else torch.zeros_like(e_log_px)
            if progress is not None:
                progress.update(len(xb) * (samples + 1))
            return {
                "bce_mean_decode": bce_mu,
                "bce_sampled": bce_z.mean(0),
                "se_mean_decode": se_mu,
                "se_sampled": se_z.mean(0),
                "log_px_mu": log_px_mu,
                "e_log_px": e_log_px,
                # the Monte-Carlo variance of this image's E_q estimate: what more draws would shrink
                "e_log_px_mc_var": mc_var,
                "log_px_predictive": predictive_log_likelihood(model, xb, decoded_z),
                "jensen_gap": log_px_mu - e_log_px,
            }

    parts = _map_chunks(run, _chunks(len(x), chunk_images), x.device)
    return {key: torch.cat([part[key] for part in parts]).cpu().double().numpy() for key in parts[0]}


def paired_summary(sampled: np.ndarray, mean_decode: np.ndarray) -> dict[str, float]:
    """The paired difference first - second over images: its mean, standard error, normal 95% CI (over the images),
    and the share of images where it is positive (the second strictly lower). Callers name that share for what it
    means to them (the mean decode better; the challenger better)."""
    diff = np.asarray(sampled, dtype=np.float64) - np.asarray(mean_decode, dtype=np.float64)
    se = float(diff.std(ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else 0.0
    mean = float(diff.mean())
    return {
        "diff_mean": mean,
        "diff_se": se,
        "diff_ci95_low": mean - 1.96 * se,
        "diff_ci95_high": mean + 1.96 * se,
        "share_positive": float(np.mean(diff > 0)),
    }


def k_study(
    model: VAE,
    x: torch.Tensor,
    ks: list[int],
    repeats: int,
    seed: int,
    chunk_images: int = 64,
    chunk_samples: int = 128,
    precision: str = "fp32",
    progress: Progress | None = None,
) -> list[dict[str, float]]:
    """ELBO_K and L_K for each K, repeated R times with fresh draws: their mean, the per-image spread across
    repeats (root-mean-square over images of the standard deviation: the estimator noise one image sees) and the
    spread of the data-set mean across repeats. Repeats are stacked as extra images, so each K is one stream."""
    stacked = x.repeat(repeats, 1)  # (R * N, D): repeat r is rows r*N .. (r+1)*N
    rows = []
    for stream, k in enumerate(ks, start=2):  # streams 0 and 1: the NLL and the reconstructions
        stats = sample_stats(
            model, stacked, k, seed, stream, chunk_images, min(chunk_samples, k), precision=precision, progress=progress
        )
        row: dict[str, float] = {"k": int(k)}
        for name, per_image in (("elbo", stats.elbo), ("iwae", stats.iwae)):
            table = per_image.reshape(repeats, len(x)).double().cpu()
            row[f"{name}_mean"] = float(table.mean())
            row[f"{name}_std_image"] = float(table.std(0, correction=1).pow(2).mean().sqrt())
            row[f"{name}_std_dataset"] = float(table.mean(1).std(correction=1))
        rows.append(row)
    return rows


def nll_estimate(
    model: VAE,
    x: torch.Tensor,
    samples: int,
    seed: int,
    chunk_images: int = 64,
    chunk_samples: int = 128,
    precision: str = "fp32",
    progress: Progress | None = None,
) -> dict[str, float | np.ndarray]:
    """The importance-sampled NLL -L_K (Burda et al. 2016), in nats per image and bits per dimension."""
    stats = sample_stats(
        model, x, samples, seed, 0, chunk_images, chunk_samples, precision=precision, progress=progress
    )
    per_image = -stats.iwae.double().cpu().numpy()
    nats = float(per_image.mean())
    return {
        "nll_nats": nats,
        "nll_se": float(per_image.std(ddof=1) / math.sqrt(len(per_image))) if len(per_image) > 1 else 0.0,
        "nll_bits_per_dim": nats / (x.shape[1] * math.log(2)),
        "per_image": per_image,
    }
