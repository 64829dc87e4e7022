"""Evaluate stage: sampled vs mean decoding, the K-sample estimators and latent health of each model, on held-out data.

`vaeops evaluate`, `dvc repro` and the Prefect flow all call `evaluate(params)`. Every Monte-Carlo draw comes from
evaluate.seed, so a second run writes identical numbers; outputs are computed first and then written atomically.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vaeops.core.errors import CheckpointError, DataError
from vaeops.core.fileio import atomic_directory, write_json_atomic, write_text_atomic
from vaeops.core.params import EvaluateParams, Params, load_params
from vaeops.data.splits import load_manifest, load_split, manifest_sha256
from vaeops.evaluation import plots as eval_plots
from vaeops.evaluation.estimators import (
    check_precision,
    chunk_generator,
    encode_all,
    k_study,
    paired_summary,
    reconstruction_errors,
    sample_stats,
)
from vaeops.evaluation.latent_health import latent_health, pca_2d
from vaeops.evaluation.report import PLUGIN_MODEL, VAE_MODEL, render_report
from vaeops.training.binarize import binarize_static
from vaeops.training.checkpoint import load_model
from vaeops.training.devices import intra_op_threads, resolve_device, retain_freed_memory
from vaeops.training.model import VAE

PICTURES, PRIOR = 90, 91  # generator streams of the plotted draws (0, 1, 2.. are the estimators')


def load_test_images(params: Params) -> tuple[torch.Tensor, np.ndarray, tuple[int, int]]:
    """The evaluation split as (N, D) float32, binarized once when evaluate.binarize is static; labels; (H, W)."""
    cfg = params.evaluate
    images, labels = load_split(params.data.out_dir, cfg.split)
    if images.shape[0] == 0:
        raise DataError(f"{params.data.out_dir}/{cfg.split}.npz holds no images: there is nothing to evaluate")
    x = torch.from_numpy(images.reshape(images.shape[0], -1).astype(np.float32))
    if not (0 <= float(x.min()) and float(x.max()) <= 1):
        raise DataError(f"{params.data.out_dir}/{cfg.split}.npz: pixel values outside [0, 1]")
    if cfg.binarize == "static":
        x = binarize_static(x, cfg.binarize_seed)
    return x, labels, tuple(images.shape[1:])


def load_models(params: Params, data_sha256: str, input_dim: int, device: torch.device) -> dict[str, VAE]:
    """Each compared model's checkpoint, refused when it was trained on other data or another image size."""
    models = {}
    for name in params.evaluate.models:
        path = Path(params.train.out_dir) / name / params.evaluate.checkpoint
        model, _ = load_model(path, expected_data_sha256=data_sha256, map_location=device)
        if model.config.input_dim != input_dim:
            raise CheckpointError(f"{path} expects {model.config.input_dim} pixels, the prepared images have {input_dim}")
        models[name] = model
    return models


def measure(model: VAE, x: torch.Tensor, cfg: EvaluateParams) -> dict[str, Any]:
    """Every estimate for one model: per-image reconstruction errors, the K study, the large-K bound, latents."""
    recon = reconstruction_errors(model, x, cfg.recon_samples, cfg.seed, chunk_images=cfg.chunk_images)
    bound = sample_stats(model, x, cfg.nll_k, cfg.seed, 0, cfg.chunk_images, cfg.chunk_samples, precision=cfg.precision)
    study_x = x[: cfg.study_images] if cfg.study_images else x
    study = k_study(model, study_x, cfg.elbo_ks, cfg.elbo_repeats, cfg.seed, cfg.chunk_images, cfg.chunk_samples,
                    cfg.precision)
    mu, logvar = encode_all(model, x, cfg.chunk_images)
    return {"recon": recon, "nll": (-bound.iwae).double().cpu().numpy(), "elbo": bound.elbo.double().cpu().numpy(),
            "recon_term": bound.mean_log_likelihood.double().cpu().numpy(), "kl": bound.kl.double().cpu().numpy(),
            "study": study, "health": latent_health(mu, logvar, cfg.active_threshold, cfg.collapse_kl),
            "mu": mu.double().cpu().numpy()}


def _mean_se(values: np.ndarray) -> tuple[float, float]:
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


def headline(m: dict[str, Any], pixels: int) -> dict[str, Any]:
    """The numbers of one model that go to metrics.json: flat, so `dvc metrics show/diff` can list them."""
    nll, nll_se = _mean_se(m["nll"])
    gap, gap_se = _mean_se(m["recon"]["jensen_gap"])
    out: dict[str, Any] = {"nll": nll, "nll_se": nll_se, "nll_bits_per_dim": nll / (pixels * np.log(2)),
                           "elbo": float(m["elbo"].mean()), "recon_term": float(m["recon_term"].mean()),
                           "kl": float(m["kl"].mean()), "bound_gap": float((-m["nll"] - m["elbo"]).mean()),
                           "log_px_mu": float(m["recon"]["log_px_mu"].mean()),
                           "e_log_px": float(m["recon"]["e_log_px"].mean()), "jensen_gap": gap, "jensen_gap_se": gap_se}
    for error in ("bce", "se"):
        summary = paired_summary(m["recon"][f"{error}_sampled"], m["recon"][f"{error}_mean_decode"])
        out[f"{error}_mean_decode"] = float(m["recon"][f"{error}_mean_decode"].mean())
        out[f"{error}_sampled"] = float(m["recon"][f"{error}_sampled"].mean())
        out.update({f"{error}_{key}": value for key, value in summary.items()})
    first, last = m["study"][0], m["study"][-1]
    out.update({f"elbo_std_k{first['k']}": first["elbo_std_image"], f"elbo_std_k{last['k']}": last["elbo_std_image"]})
    health = m["health"]
    out.update({key: health[key] for key in ("latent_dim", "active_units", "collapsed_dims", "mean_posterior_std")})
    out["collapsed"] = health["posterior_collapsed"]
    return out


def compare(vae: dict[str, Any], plugin: dict[str, Any]) -> dict[str, float]:
    """The `plugin` model against the `vae` model on the same images: paired NLL difference."""
    paired = paired_summary(plugin["nll"], vae["nll"])
    return {"nll_plugin_minus_vae": paired["diff_mean"], "nll_diff_se": paired["diff_se"],
            "nll_diff_ci95_low": paired["diff_ci95_low"], "nll_diff_ci95_high": paired["diff_ci95_high"],
            "share_images_vae_better": paired["share_mean_decode_better"]}


def _csv(columns: dict[str, np.ndarray | list]) -> str:
    """A CSV with one column per key; floats with 7 significant digits (stable text, so DVC hashes repeat)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in zip(*columns.values()):
        writer.writerow([f"{v:.7g}" if isinstance(v, (float, np.floating)) else v for v in row])
    return buffer.getvalue()


def plot_tables(results: dict[str, dict], labels: np.ndarray) -> dict[str, str]:
    """The data series behind the DVC plots: per-image values, estimators vs K, gap histograms, 2-D latents."""
    per_image: dict[str, Any] = {"index": list(range(len(labels))), "label": labels.tolist()}
    latent: dict[str, Any] = dict(per_image)
    for name, m in results.items():
        for key, values in m["recon"].items():
            per_image[f"{name}_{key}"] = values
        per_image[f"{name}_nll"] = m["nll"]
        xy, _ = pca_2d(m["mu"])
        latent[f"{name}_pc1"], latent[f"{name}_pc2"] = xy[:, 0], xy[:, 1]
    studies = {"k": [row["k"] for row in next(iter(results.values()))["study"]]}
    for name, m in results.items():
        for key in m["study"][0]:
            if key != "k":
                studies[f"{name}_{key}"] = [row[key] for row in m["study"]]
    gaps = np.concatenate([m["recon"]["jensen_gap"] for m in results.values()])
    edges = np.histogram_bin_edges(gaps, bins=30)
    histogram: dict[str, Any] = {"jensen_gap": (edges[:-1] + edges[1:]) / 2}
    for name, m in results.items():
        histogram[f"{name}_images"] = np.histogram(m["recon"]["jensen_gap"], bins=edges)[0].tolist()
    return {"per_image.csv": _csv(per_image), "estimators.csv": _csv(studies), "gap_histogram.csv": _csv(histogram),
            "latent.csv": _csv(latent)}


def picture_arrays(models: dict[str, VAE], x: torch.Tensor, shape: tuple[int, int], cfg: EvaluateParams) -> dict[str, Any]:
    """Images for the figures: originals, mean and one sampled reconstruction, and decoded prior draws (the same
    z for every model, so the grids differ only by the decoder)."""
    n = min(cfg.plot_images, len(x))
    originals = x[:n]
    rows, prior = {}, {}
    with torch.inference_mode():
        for name, model in models.items():
            mu, logvar = model.encode(originals)
            eps = torch.randn(mu.shape, generator=chunk_generator(cfg.seed, PICTURES, 0, x.device), device=x.device)
            rows[f"{name} model, decode z = mu"] = model.pixel_mean(model.decode(mu))
            rows[f"{name} model, decode z ~ q(z|x)"] = model.pixel_mean(model.decode(mu + torch.exp(0.5 * logvar) * eps))
            z = torch.randn((cfg.prior_samples, model.config.latent_dim),
                            generator=chunk_generator(cfg.seed, PRIOR, 0, x.device), device=x.device)
            prior[name] = model.pixel_mean(model.decode(z))

    def as_images(t: torch.Tensor) -> np.ndarray:
        return t.clamp(0, 1).cpu().numpy().reshape(-1, *shape)

    return {"originals": as_images(originals), "rows": {k: as_images(v) for k, v in rows.items()},
            "prior": {k: as_images(v) for k, v in prior.items()}}


def evaluate(params: Params) -> dict[str, Any]:
    """Stage function: measure every model in evaluate.models on the evaluation split and write metrics.json,
    the plot data (eval/), the figures (plots/) and report.md under evaluate.out_dir. Returns the headline numbers.

    The stage's own tensor work runs on one intra-op thread (the heavy estimators run on single-threaded workers
    anyway): otherwise its last bits depended on the thread count an earlier stage of the same process left behind
    (the flow's train stage sets train.threads), and a flow run and `vaeops evaluate` wrote different bytes.
    """
    with intra_op_threads(1):
        return _evaluate(params)


def _evaluate(params: Params) -> dict[str, Any]:
    """The body of evaluate()."""
    cfg = params.evaluate
    started = time.perf_counter()
    prepared = Path(params.data.out_dir)
    data_sha = manifest_sha256(prepared)
    x, labels, shape = load_test_images(params)
    device = resolve_device("auto")
    check_precision(cfg.precision, device)  # before any work, not after the first model's reconstructions
    retain_freed_memory()  # the estimators free and reallocate MB-sized chunks of logits thousands of times
    x = x.to(device)
    models = load_models(params, data_sha, x.shape[1], device)
    results = {name: measure(model, x, cfg) for name, model in models.items()}
    metrics = {"dataset": load_manifest(prepared).get("dataset", params.data.dataset), "split": cfg.split,
               "images": int(len(x)), "pixels": int(x.shape[1]), "binarize": cfg.binarize, "seed": cfg.seed,
               "nll_k": cfg.nll_k, "precision": cfg.precision, "data_sha256": data_sha,
               "models": {name: headline(m, x.shape[1]) for name, m in results.items()}}
    if VAE_MODEL in results and PLUGIN_MODEL in results:
        metrics["comparison"] = compare(results[VAE_MODEL], results[PLUGIN_MODEL])
    details = {name: {"config": models[name].config.to_dict(), "k_study": m["study"],
                      **{k: m["health"][k] for k in ("kl_per_dim", "activity_per_dim")}}
               for name, m in results.items()}
    pictures = picture_arrays(models, x, shape, cfg)
    tables = plot_tables(results, labels)
    report = render_report(metrics, details, cfg)
    out = Path(cfg.out_dir)
    with atomic_directory(out / "plots") as plots:
        eval_plots.reconstructions(plots / "reconstructions.png", pictures["originals"], pictures["rows"])
        eval_plots.estimators_vs_k(plots / "estimators_vs_k.png", {n: m["study"] for n, m in results.items()},
                                   {n: (cfg.nll_k, metrics["models"][n]["nll"]) for n in results})
        eval_plots.gap_distributions(plots / "gaps.png", {n: {"jensen_gap": m["recon"]["jensen_gap"],
                                                              "se_diff": m["recon"]["se_sampled"] - m["recon"]["se_mean_decode"]}
                                                          for n, m in results.items()})
        eval_plots.prior_samples(plots / "prior_samples.png", pictures["prior"])
        eval_plots.latent_scatter(plots / "latent_2d.png", {n: pca_2d(m["mu"]) for n, m in results.items()}, labels)
    with atomic_directory(out / "eval") as tables_dir:
        for filename, text in tables.items():
            (tables_dir / filename).write_text(text, encoding="utf-8")
        (tables_dir / "details.json").write_text(json.dumps(details, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    write_json_atomic(out / "metrics.json", metrics)
    write_text_atomic(out / "report.md", report)
    return {"seconds": round(time.perf_counter() - started, 2), "images": metrics["images"],
            "models": {n: {k: h[k] for k in ("nll", "elbo", "bce_diff_mean", "jensen_gap", "active_units")}
                       for n, h in metrics["models"].items()}}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """CLI options of `vaeops evaluate` (everything else comes from the evaluate section of params.yaml)."""
    parser.add_argument("--nll-k", type=int, default=None, help="override evaluate.nll_k for this run")


def run_cli(args: argparse.Namespace) -> None:
    """`vaeops evaluate`: run the stage and print its summary."""
    overrides = {"evaluate.nll_k": args.nll_k} if args.nll_k is not None else None
    print(json.dumps(evaluate(load_params(args.params, overrides)), indent=2))
