"""Latent health: KL per latent dimension, active units (Burda et al. 2016) and a posterior-collapse flag."""

from __future__ import annotations

import numpy as np
import torch

from vaeops.model.objectives import gaussian_kl


def latent_health(
    mu: torch.Tensor, logvar: torch.Tensor, active_threshold: float = 0.01, collapse_kl: float = 0.01
) -> dict:
    """Summarise how the encoder uses its latent dimensions over a set of images.

    A unit is active when Cov_x(E_q[z_j | x]) = Var over images of mu_j exceeds `active_threshold` (the IWAE
    paper's 0.01); a dimension has collapsed when its mean KL(q || p) is below `collapse_kl` nats, i.e. q(z_j|x)
    is the prior whatever x is. The posterior has collapsed when every dimension has.
    """
    mu64, logvar64 = mu.double().cpu(), logvar.double().cpu()
    kl_per_dim = gaussian_kl(mu64, logvar64).mean(0).numpy()
    activity = mu64.var(0, correction=1).numpy() if len(mu64) > 1 else np.zeros(mu64.shape[1])
    collapsed = kl_per_dim < collapse_kl
    return {
        "latent_dim": int(mu.shape[1]),
        "kl_total": float(kl_per_dim.sum()),
        "kl_per_dim": [float(v) for v in kl_per_dim],
        "activity_per_dim": [float(v) for v in activity],
        "active_units": int((activity > active_threshold).sum()),
        "collapsed_dims": int(collapsed.sum()),
        "posterior_collapsed": bool(collapsed.all()),
        "mean_posterior_std": float(torch.exp(0.5 * logvar64).mean()),
    }


def pca_2d(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project points (N, L) onto their first two principal axes; returns (N, 2) and the explained variance ratios.

    With L <= 2 the points are returned as they are (padded with zeros for L = 1), so the plot shows raw latents.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.shape[1] <= 2:
        padded = np.zeros((len(points), 2))
        padded[:, : points.shape[1]] = points
        return padded, np.ones(2)
    centred = points - points.mean(0)
    _, singular, axes = np.linalg.svd(centred, full_matrices=False)
    variance = singular**2
    ratio = variance[:2] / variance.sum() if variance.sum() > 0 else np.zeros(2)
    return centred @ axes[:2].T, ratio
