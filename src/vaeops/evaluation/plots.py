"""PNG figures of the evaluation (matplotlib Agg, no display): reconstructions, estimators vs K, gaps, prior,
latents."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: the stage runs under DVC, Prefect and CI with no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red")


def _save(fig: plt.Figure, path: Path) -> None:
    fig.savefig(
        path, dpi=110, bbox_inches="tight", metadata={"Software": None}
    )  # no version stamp: same bytes each run
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
    """One row per model, each on its own axes (a model whose bound is far off cannot squash the others). Left:
    ELBO_K and L_K (mean, band: per-image spread) against K, and the NLL estimate; right: the per-image noise of
    each estimator against K with the 1/sqrt(K) reference through its first point."""
    fig, axes = plt.subplots(len(studies), 2, figsize=(10, 3.0 * len(studies)), squeeze=False)
    for (left, right), colour, (name, rows) in zip(axes, COLOURS, studies.items()):
        ks = np.array([row["k"] for row in rows])
        # ELBO_K in grey with squares, L_K in the model's colour with circles: told apart in colour, line and marker
        for key, style, marker, tone, label in (
            ("elbo", "--", "s", "dimgray", "ELBO_K"),
            ("iwae", "-", "o", colour, "L_K (IWAE bound)"),
        ):
            mean = np.array([row[f"{key}_mean"] for row in rows])
            spread = np.array([row[f"{key}_std_image"] for row in rows])
            left.plot(ks, mean, style, marker=marker, color=tone, label=label)
            left.fill_between(ks, mean - spread, mean + spread, color=tone, alpha=0.12)
            right.plot(ks, spread, style, marker=marker, color=tone, label=f"{label} noise")
        first = rows[0]["elbo_std_image"]
        if first > 0:
            right.plot(ks, first * np.sqrt(ks[0] / ks), ":", color="black", label="1/sqrt(K) reference")
        k_big, value = nll[name]
        left.scatter(
            [k_big],
            [-value],
            marker="*",
            s=140,
            color=colour,
            edgecolor="black",
            zorder=3,
            label=f"L_{k_big}, the NLL estimate (same images, own draws)",
        )
        for ax in (left, right):
            ax.set_xscale("log")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        right.set_yscale("log")
        left.set_ylabel(f"{name}: nats per image")
        right.set_ylabel("std across repeats (nats)")
    for ax in axes[-1]:
        ax.set_xlabel("K (samples per image)")
    axes[0, 0].set_title("Estimate vs K (band: +/- one per-image std)", fontsize=9)
    axes[0, 1].set_title("Estimator noise vs K, per image", fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def why_sample(path: Path, draws: np.ndarray, plug_in: np.ndarray) -> None:
    """Per test image (columns), the histogram of log p(x|z) over draws z ~ q(z|x), their mean (the ELBO's term
    E_q[log p(x|z)]) and the plug-in log p(x|mu): the two numbers a VAE could use, side by side."""
    fig, axes = plt.subplots(1, len(draws), figsize=(3.2 * len(draws), 2.8), squeeze=False)
    for i, ax in enumerate(axes[0]):
        ax.hist(draws[i], bins=30, color="tab:blue", alpha=0.6, label="log p(x|z), z ~ q(z|x)")
        ax.axvline(float(draws[i].mean()), color="tab:blue", lw=1.6, label="mean over draws: E_q[log p(x|z)]")
        ax.axvline(float(plug_in[i]), color="tab:red", lw=1.6, ls="--", label="plug-in log p(x|z = mu)")
        ax.set_title(f"test image {i}", fontsize=9)
        ax.set_xlabel("nats")
    axes[0, 0].set_ylabel("draws")
    axes[0, 0].legend(fontsize=6, loc="upper left")
    fig.suptitle("Why sample: the ELBO needs the average of log p(x|z) under q, not its value at the mean", fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def gap_distributions(path: Path, gaps: dict[str, dict[str, np.ndarray]]) -> None:
    """Per model (rows), histograms of the per-image Jensen gap and of the sampled-minus-mean squared error; each
    panel has its own bins, since the models' gaps can differ by orders of magnitude."""
    titles = {
        "jensen_gap": "Jensen gap log p(x|mu) - E_q[log p(x|z)] (nats)",
        "se_diff": "squared error: sampled - mean decode",
    }
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
    """A grid of decoded z ~ N(0, I) per model, one model per row, large enough to see each digit."""
    rows_per_model = int(np.ceil(max(len(images) for images in samples.values()) / columns))
    fig, axes = plt.subplots(
        len(samples), 1, figsize=(6, len(samples) * (6 * rows_per_model / columns + 0.5)), squeeze=False
    )
    for ax, (name, images) in zip(axes[:, 0], samples.items()):
        rows = int(np.ceil(len(images) / columns))
        h, w = images.shape[1:]
        grid = np.ones((rows * (h + 1), columns * (w + 1)))
        for i, image in enumerate(images):
            r, c = divmod(i, columns)
            grid[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = image
        _show(ax, grid)
        ax.set_title(f"{name}: decoded z ~ N(0, I) (the same z for every model)", fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def latent_scatter(path: Path, points: dict[str, tuple[np.ndarray, np.ndarray]], labels: np.ndarray) -> None:
    """Posterior means in 2-D (PCA when the latent has more than two dimensions), coloured by class label."""
    fig, axes = plt.subplots(1, len(points), figsize=(5 * len(points), 4.4), squeeze=False)
    for ax, (name, (xy, ratio)) in zip(axes[0], points.items()):
        scatter = ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap="tab10", s=5, alpha=0.7, vmin=-0.5, vmax=9.5)
        ax.set_title(f"{name}: E_q[z|x]\nPC1 {ratio[0]:.0%}, PC2 {ratio[1]:.0%} of the variance", fontsize=9)
        ax.set_xlabel("PC1")
        ax.set_ylabel("PC2")
    fig.colorbar(scatter, ax=axes[0].tolist(), ticks=range(10), label="label")
    _save(fig, path)
