"""Evaluate stage: sampled vs mean decoding, the K-sample estimators and latent health of each model, on held-out data.

`vaeops evaluate`, `dvc repro` and the Prefect flow all call `evaluate(params)`. Every Monte-Carlo draw comes from
evaluate.seed, so a second run writes identical numbers; outputs are computed first and then written atomically.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vaeops.bundle.reports import EvaluationMetrics, Headline
from vaeops.core.artifacts import dump_artifact, write_artifact
from vaeops.core.errors import CheckpointError
from vaeops.core.fileio import atomic_directory, sha256_file, write_text_atomic
from vaeops.core.params import EvaluateParams, Params, load_params
from vaeops.core.progress import Progress
from vaeops.dataset.splits import load_manifest, manifest_sha256
from vaeops.evaluation import measure as measures
from vaeops.evaluation import plots as eval_plots
from vaeops.evaluation.latent_health import pca_2d
from vaeops.evaluation.report import VAE_MODEL, render_report
from vaeops.evaluation.series import plot_tables
from vaeops.model.checkpoint import load_model
from vaeops.model.devices import (
    check_precision,
    intra_op_threads,
    resolve_device,
    retain_freed_memory,
)
from vaeops.model.estimators import chunk_generator
from vaeops.model.images import load_images
from vaeops.model.vae import VAE, shift_scale

PICTURES, PRIOR, WHY = 90, 91, 92  # generator streams of the plotted draws (0, 1, 2.. are the estimators')
WHY_IMAGES, WHY_DRAWS = 4, 200  # the figure of per-draw log p(x|z) against the plug-in log p(x|mu)
REPLICATES = "replicates"  # models/<variant>/replicates/seed-<seed>/best.pt, written by the train stage
HEADLINE = "headline.json"  # the one file dvc.yaml declares as a metric


def load_test_images(params: Params) -> tuple[torch.Tensor, np.ndarray, tuple[int, int]]:
    """The evaluation split as (N, D) float32, binarized once when evaluate.binarize is static; labels; (H, W)."""
    cfg = params.evaluate
    return load_images(params.data.out_dir, cfg.split, cfg.binarize, cfg.binarize_seed)


def load_models(params: Params, data_sha256: str, input_dim: int, device: torch.device) -> dict[str, VAE]:
    """Each compared model's checkpoint, refused when it was trained on other data or another image size."""
    return {
        name: load_checked(
            Path(params.train.out_dir) / name / params.evaluate.checkpoint, data_sha256, input_dim, device
        )
        for name in params.evaluate.models
    }


def load_checked(path: Path, data_sha256: str, input_dim: int, device: torch.device) -> VAE:
    """One checkpoint, refused when it was trained on other data or another image size."""
    model, _ = load_model(path, expected_data_sha256=data_sha256, map_location=device)
    if model.config.input_dim != input_dim:
        raise CheckpointError(f"{path} expects {model.config.input_dim} pixels, the prepared images have {input_dim}")
    return model


def replicate_paths(params: Params, name: str) -> dict[int, Path]:
    """The training seeds of one model and their best checkpoints; empty when it was trained with one seed."""
    folder = Path(params.train.out_dir) / name / REPLICATES
    found = (
        {int(p.parent.name.removeprefix("seed-")): p for p in folder.glob("seed-*/best.pt")} if folder.is_dir() else {}
    )
    return dict(sorted(found.items()))


def measure_replicates(
    params: Params, results: dict[str, dict], x: torch.Tensor, nll_rows: np.ndarray, data_sha: str, device: torch.device
) -> dict[str, Any] | None:
    """The headline quantities of every training seed of every model, and their spread; None without replicates."""
    cfg = params.evaluate
    paths = {name: replicate_paths(params, name) for name in cfg.models}
    if not any(len(p) > 1 for p in paths.values()):
        return None
    runs: dict[str, dict[int, dict]] = {}
    each = len(x) * (cfg.recon_samples + 1) + len(nll_rows) * cfg.nll_k
    with Progress(sum(len(p) for p in paths.values()) * each, "evaluate: training seeds", unit="draw") as progress:
        for name, seeds in paths.items():
            main = sha256_file(Path(params.train.out_dir) / name / cfg.checkpoint)
            runs[name] = {}
            for seed, path in seeds.items():
                # the selected seed is the main model: same images, same draws, so its numbers are already there
                if sha256_file(path) == main:
                    runs[name][seed] = results[name]
                    progress.update(each)
                else:
                    runs[name][seed] = measures.replicate(
                        load_checked(path, data_sha, x.shape[1], device), x, nll_rows, cfg, progress
                    )
    return measures.seed_spread(runs, VAE_MODEL)


def picture_arrays(
    models: dict[str, VAE], x: torch.Tensor, shape: tuple[int, int], cfg: EvaluateParams
) -> dict[str, Any]:
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
            rows[f"{name} model, decode z ~ q(z|x)"] = model.pixel_mean(model.decode(shift_scale(mu, logvar, eps)))
            z = torch.randn(
                (cfg.prior_samples, model.config.latent_dim),
                generator=chunk_generator(cfg.seed, PRIOR, 0, x.device),
                device=x.device,
            )
            prior[name] = model.pixel_mean(model.decode(z))

    def as_images(t: torch.Tensor) -> np.ndarray:
        return t.clamp(0, 1).cpu().numpy().reshape(-1, *shape)

    return {
        "originals": as_images(originals),
        "rows": {k: as_images(v) for k, v in rows.items()},
        "prior": {k: as_images(v) for k, v in prior.items()},
    }


def why_sample_arrays(model: VAE, x: torch.Tensor, seed: int) -> dict[str, np.ndarray]:
    """For a few test images: log p(x|z) at each of WHY_DRAWS draws z ~ q(z|x), and the plug-in log p(x|mu)."""
    images = x[:WHY_IMAGES]
    with torch.inference_mode():
        mu, logvar = model.encode(images)
        eps = torch.randn((WHY_DRAWS, *mu.shape), generator=chunk_generator(seed, WHY, 0, x.device), device=x.device)
        draws = model.log_likelihood(images, model.decode(shift_scale(mu, logvar, eps)))  # (draws, images)
        plug_in = model.log_likelihood(images, model.decode(mu))
    return {"draws": draws.t().double().cpu().numpy(), "plug_in": plug_in.double().cpu().numpy()}


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
    nll_rows = measures.subset(len(x), cfg.nll_images, cfg.seed, measures.NLL_ROWS)
    results = {}
    for name, model in models.items():
        with Progress(measures.work(len(x), len(nll_rows), cfg), f"evaluate {name}", unit="draw") as bar:
            results[name] = measures.measure(model, x, nll_rows, cfg, bar)
    metrics = {
        "dataset": load_manifest(prepared).get("dataset", params.data.dataset),
        "split": cfg.split,
        "images": int(len(x)),
        "nll_images": int(len(nll_rows)),
        "pixels": int(x.shape[1]),
        "binarize": cfg.binarize,
        "seed": cfg.seed,
        "nll_k": cfg.nll_k,
        "elbo_ks": list(cfg.elbo_ks),
        "precision": cfg.precision,
        "data_sha256": data_sha,
        "models": {name: measures.headline(m, x.shape[1]) for name, m in results.items()},
    }
    if VAE_MODEL in results:
        metrics["comparisons"] = {
            name: measures.compare(results[VAE_MODEL], m) for name, m in results.items() if name != VAE_MODEL
        }
    seeds = measure_replicates(params, results, x, nll_rows, data_sha, device)
    if seeds is not None:
        metrics["seeds"] = seeds
    # Checked against the schema and rounded to the digits written: the report shows the numbers metrics.json holds.
    checked = EvaluationMetrics.model_validate(metrics)
    metrics = dump_artifact(checked)
    details = {
        name: {
            "config": models[name].config.to_dict(),
            "k_study": m["study"],
            **{k: m["health"][k] for k in ("kl_per_dim", "activity_per_dim")},
        }
        for name, m in results.items()
    }
    pictures = picture_arrays(models, x, shape, cfg)
    why = why_sample_arrays(models.get(VAE_MODEL, next(iter(models.values()))), x, cfg.seed)
    tables = plot_tables(results, labels, nll_rows)
    report = render_report(metrics, details, cfg)
    out = Path(cfg.out_dir)
    with atomic_directory(out / "plots") as plots:
        eval_plots.reconstructions(plots / "reconstructions.png", pictures["originals"], pictures["rows"])
        eval_plots.estimators_vs_k(
            plots / "estimators_vs_k.png",
            {n: m["study"] for n, m in results.items()},
            {n: (cfg.nll_k, metrics["models"][n]["nll"]) for n in results},
        )
        eval_plots.gap_distributions(
            plots / "gaps.png",
            {
                n: {
                    "jensen_gap": m["recon"]["jensen_gap"],
                    "se_diff": m["recon"]["se_sampled"] - m["recon"]["se_mean_decode"],
                }
                for n, m in results.items()
            },
        )
        eval_plots.prior_samples(plots / "prior_samples.png", pictures["prior"])
        eval_plots.latent_scatter(plots / "latent_2d.png", {n: pca_2d(m["mu"]) for n, m in results.items()}, labels)
        eval_plots.why_sample(plots / "why_sample.png", why["draws"], why["plug_in"])
    with atomic_directory(out / "eval") as tables_dir:
        for filename, text in tables.items():
            (tables_dir / filename).write_text(text, encoding="utf-8")
        (tables_dir / "details.json").write_text(json.dumps(details, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    write_artifact(out / "metrics.json", checked)
    write_artifact(out / HEADLINE, headline_file(checked))
    write_text_atomic(out / "report.md", report)
    return {
        "seconds": round(time.perf_counter() - started, 2),
        "images": metrics["images"],
        "models": {
            n: {k: h[k] for k in ("nll", "elbo", "log_px_mu", "jensen_gap", "active_units")}
            for n, h in metrics["models"].items()
        },
    }


def headline_file(metrics: EvaluationMetrics) -> Headline:
    """The few numbers `dvc metrics show` lists in 80 columns: each model's NLL and the `vae` model's Jensen gap."""
    models = metrics.models
    gap = {VAE_MODEL: round(models[VAE_MODEL].jensen_gap, 2)} if VAE_MODEL in models else {}
    return Headline(nll={name: round(h.nll, 2) for name, h in models.items()}, gap=gap)


def run_cli(args: argparse.Namespace) -> None:
    """`vaeops evaluate`: run the stage and print its summary."""
    print(json.dumps(evaluate(load_params(args.params, args.overrides)), indent=2))
