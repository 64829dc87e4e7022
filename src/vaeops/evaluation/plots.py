"""PNG figures of the evaluation (matplotlib Agg, no display): reconstructions, estimators vs K, gaps, prior, latents."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: the stage runs under DVC, Prefect and CI with no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red")


def _save(fig: plt.Figure, path: Path) -> None:
    fig.savefig(path, dpi=110, bbox_inches="tight", metadata={"Software": None})  # no version stamp: same bytes each run
    plt.close(fig)


def _show(ax: plt.Axes, image: np.ndarray) -> None:
    ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def reconstructions(path: Path, originals: np.ndarray, rows: dict[str, np.ndarray]) -> None:
    """Originals in the top row, then one row per (model, decode) pair, e.g. "sample: z = mu"."""
    n = len(originals)
    fig, axes = plt.subplots(1 + len(rows), n, figsize=(1.1 * n + 1.6, 1.15 * (1 + len(rows))), squeeze=False)
    for col in range(n):
        _show(axes[0, col], originals[col])
        for row, images in enumerate(rows.values(), start=1):
            _show(axes[row, col], images[col])
    for row, label in enumerate(["original", *rows], start=0):
        axes[row, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle("Originals and reconstructions: decoding the mean vs one draw z ~ q(z|x)", fontsize=9)
    _save(fig, path)


def estimators_vs_k(path: Path, studies: dict[str, list[dict]], nll: dict[str, tuple[int, float]]) -> None:
    """Left: ELBO_K and L_K (mean, with the per-image spread as a band) against K; right: the spread itself."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for colour, (name, rows) in zip(COLOURS, studies.items()):
        ks = np.array([row["k"] for row in rows])
        for key, style in (("elbo", "--"), ("iwae", "-")):
            mean = np.array([row[f"{key}_mean"] for row in rows])
            spread = np.array([row[f"{key}_std_image"] for row in rows])
            label = f"{name}: {'ELBO_K' if key == 'elbo' else 'L_K (IWAE)'}"
            left.plot(ks, mean, style, marker="o", color=colour, label=label)
            left.fill_between(ks, mean - spread, mean + spread, color=colour, alpha=0.12)
            right.plot(ks, spread, style, marker="o", color=colour, label=label)
        k_big, value = nll[name]
        left.scatter([k_big], [-value], marker="*", s=120, color=colour, label=f"{name}: L_{k_big} (NLL estimate)")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xlabel("K (samples per image)")
        ax.grid(alpha=0.3)
    right.set_yscale("log")
    left.set_ylabel("nats per image (mean over images)")
    right.set_ylabel("std across repeats, per image (nats)")
    left.set_title("Estimate vs K (band: +/- one per-image std)", fontsize=9)
    right.set_title("Estimator noise vs K", fontsize=9)
    left.legend(fontsize=7)
    _save(fig, path)


def gap_distributions(path: Path, gaps: dict[str, dict[str, np.ndarray]]) -> None:
    """Per model (rows), histograms of the per-image Jensen gap and of the sampled-minus-mean squared error; each
    panel has its own bins, since the models' gaps can differ by orders of magnitude."""
    titles = {"jensen_gap": "Jensen gap log p(x|mu) - E_q[log p(x|z)] (nats)",
              "se_diff": "squared error: sampled - mean decode"}
    fig, axes = plt.subplots(len(gaps), 2, figsize=(10, 2.8 * len(gaps)), squeeze=False)
    for row, (colour, (name, per_model)) in enumerate(zip(COLOURS, gaps.items())):
        for ax, (key, title) in zip(axes[row], titles.items()):
            data = per_model[key]
            ax.hist(data, bins=40, color=colour, alpha=0.75)
            ax.axvline(0.0, color="black", lw=0.8)
            ax.axvline(float(np.mean(data)), color="black", lw=0.8, ls="--")
            ax.set_title(f"{name}: {title}, mean {np.mean(data):.3g}", fontsize=9)
            ax.set_ylabel("images")
    fig.tight_layout()
    _save(fig, path)


def prior_samples(path: Path, samples: dict[str, np.ndarray], columns: int = 8) -> None:
    """A grid of decoded z ~ N(0, I) per model, side by side: what each model generates."""
    fig, axes = plt.subplots(1, len(samples), figsize=(4.2 * len(samples), 4.4), squeeze=False)
    for ax, (name, images) in zip(axes[0], samples.items()):
        rows = int(np.ceil(len(images) / columns))
        h, w = images.shape[1:]
        grid = np.ones((rows * (h + 1), columns * (w + 1)))
        for i, image in enumerate(images):
            r, c = divmod(i, columns)
            grid[r * (h + 1): r * (h + 1) + h, c * (w + 1): c * (w + 1) + w] = image
        _show(ax, grid)
        ax.set_title(f"{name}: decoded z ~ N(0, I)", fontsize=9)
    _save(fig, path)


def latent_scatter(path: Path, points: dict[str, tuple[np.ndarray, np.ndarray]], labels: np.ndarray) -> None:
    """Posterior means in 2-D (PCA when the latent has more than two dimensions), coloured by class label."""
    fig, axes = plt.subplots(1, len(points), figsize=(5 * len(points), 4.4), squeeze=False)
    for ax, (name, (xy, ratio)) in zip(axes[0], points.items()):
        scatter = ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap="tab10", s=5, alpha=0.7, vmin=-0.5, vmax=9.5)
        ax.set_title(f"{name}: E_q[z|x] (PC1 {ratio[0]:.0%}, PC2 {ratio[1]:.0%} of variance)", fontsize=9)
        ax.set_xlabel("PC1")
        ax.set_ylabel("PC2")
    fig.colorbar(scatter, ax=axes[0].tolist(), ticks=range(10), label="label")
    _save(fig, path)
