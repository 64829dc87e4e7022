"""The data series behind the DVC plots (reports/eval/*.csv): per-image values, estimators vs K, gap histograms,
2-D latents; floats with 7 significant digits so the text, and DVC's hashes, repeat."""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import numpy as np

from vaeops.evaluation.latent_health import pca_2d


def _csv(columns: dict[str, np.ndarray | list]) -> str:
    """A CSV with one column per key; floats with 7 significant digits (stable text, so DVC hashes repeat)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in zip(*columns.values()):
        writer.writerow([f"{v:.7g}" if isinstance(v, (float, np.floating)) else v for v in row])
    return buffer.getvalue()


def plot_tables(results: dict[str, dict], labels: np.ndarray, nll_rows: np.ndarray) -> dict[str, str]:
    """The data series behind the DVC plots: per-image values, estimators vs K, gap histograms, 2-D latents."""
    per_image: dict[str, Any] = {"index": list(range(len(labels))), "label": labels.tolist()}
    latent: dict[str, Any] = dict(per_image)
    nll: dict[str, Any] = {"index": nll_rows.tolist(), "label": labels[nll_rows].tolist()}
    for name, m in results.items():
        for key, values in m["recon"].items():
            per_image[f"{name}_{key}"] = values
        nll[f"{name}_nll"] = m["nll"]
        xy, _ = pca_2d(m["mu"])
        latent[f"{name}_pc1"], latent[f"{name}_pc2"] = xy[:, 0], xy[:, 1]
    ks = [row["k"] for row in next(iter(results.values()))["study"]]
    studies = {"k": ks, "log10_k": [round(math.log10(k), 6) for k in ks]}  # the DVC plots' log axis
    for name, m in results.items():
        for key in m["study"][0]:
            if key != "k":
                studies[f"{name}_{key}"] = [row[key] for row in m["study"]]
    gaps = np.concatenate([m["recon"]["jensen_gap"] for m in results.values()])
    edges = np.histogram_bin_edges(gaps, bins=30)
    histogram: dict[str, Any] = {"jensen_gap": (edges[:-1] + edges[1:]) / 2}
    for name, m in results.items():
        histogram[f"{name}_images"] = np.histogram(m["recon"]["jensen_gap"], bins=edges)[0].tolist()
    return {
        "per_image.csv": _csv(per_image),
        "nll_per_image.csv": _csv(nll),
        "estimators.csv": _csv(studies),
        "gap_histogram.csv": _csv(histogram),
        "latent.csv": _csv(latent),
    }
