"""Train stage: fit the VAE on the K-sample Monte-Carlo ELBO (or the IWAE bound) and keep the best checkpoint.

`vaeops train`, `dvc repro` and the Prefect flow all call `train(params)`. Under `torchrun` every process
calls it too; each rank trains on its shard of every epoch's permutation and rank 0 writes the files.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from vaeops.core.artifacts import rounded
from vaeops.core.errors import DataError, TrainingDiverged
from vaeops.core.fileio import write_json_atomic
from vaeops.core.params import VARIANTS, Params, load_params
from vaeops.dataset.splits import load_split, manifest_sha256
from vaeops.model import devices
from vaeops.model.binarize import binarize_static
from vaeops.model.checkpoint import restore_training, save_checkpoint, training_state
from vaeops.model.vae import VAE, ModelConfig
from vaeops.training import ddp
from vaeops.training.optim import (
    build_optimizer,
    build_scheduler,
    override_lr,
    step_scheduler,
)
from vaeops.training.progress import BackgroundLive, EpochProgress, epoch_record, log_epoch
from vaeops.training.replicates import select_replicate
from vaeops.training.trainer import (
    EpochData,
    Objective,
    is_finite,
    kl_beta,
    summarize,
    train_epoch,
    validation_sums,
)

# Streams of derived seeds (see devices.derive_seed): each use of randomness draws from its own stream.
SHUFFLE, NOISE, VALIDATION, STATIC_TRAIN, STATIC_VAL = range(1, 6)

REPLICATES = "replicates"  # <out_dir>/<variant>/replicates/seed-<seed>/: one folder per training seed

# Summary keys that vary from run to run; returned to the caller but kept out of the DVC-tracked train.json.
TIMINGS = ("train_seconds", "seconds")


def load_images(prepared: Path, likelihood: str, binarize: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Train and validation images as (N, D) float32 tensors, binarized once when train.binarize is static.

    Validation images are binarized with a fixed draw under both static and dynamic binarization, so the
    validation loss of different epochs is measured on the same images.
    """
    tensors = []
    for name in ("train", "val"):
        images, _ = load_split(prepared, name)
        if images.shape[0] == 0:
            raise DataError(f"{prepared}/{name}.npz holds no images; training needs both a train and a val split")
        tensors.append(torch.from_numpy(images.reshape(images.shape[0], -1)))
    x_train, x_val = tensors
    for name, x in (("train", x_train), ("val", x_val)):
        if (likelihood == "bernoulli" or binarize != "none") and not (0 <= x.min() and x.max() <= 1):
            raise DataError(
                f"{prepared}/{name}.npz: pixel values outside [0, 1] (or NaN); a Bernoulli likelihood or "
                "binarization needs grey levels in [0, 1] (run `vaeops validate`)"
            )
    if binarize == "static":
        x_train = binarize_static(x_train, devices.derive_seed(seed, STATIC_TRAIN))
    if binarize != "none":
        x_val = binarize_static(x_val, devices.derive_seed(seed, STATIC_VAL))
    return x_train, x_val


def model_config(params: Params, input_dim: int) -> ModelConfig:
    """The architecture from the `model` section; the input size comes from the data."""
    m = params.model
    return ModelConfig(
        input_dim, tuple(m.hidden), m.latent_dim, m.activation, m.likelihood, m.gaussian_std, m.fixed_std
    )


def train(params: Params, resume: bool = False) -> dict[str, Any]:
    """Stage function: train one model variant (train.variant), write <out_dir>/<variant>/{best,last}.pt and
    train.json; with resume=True continue from last.pt. With train.replicates > 1 each seed trains into
    <out_dir>/<variant>/replicates/seed-<seed>/ and the best on validation is copied up. Returns the summary."""
    ctx = ddp.from_env()
    cfg = params.train
    hardware = devices.configure(cfg.device, cfg.precision, cfg.data_on_device, ctx.local_rank)
    ddp.init(ctx, hardware.device)
    try:
        with devices.compute_settings(cfg.threads, cfg.matmul_precision, hardware.device), devices.flush_denormals():
            runs = [_fit_seed(params, seed, resume, ctx, hardware) for seed in seeds(params)]
        return join_seeds(params, runs) if ctx.is_main else runs[0]
    finally:
        ddp.shutdown(ctx)


def seeds(params: Params) -> list[int]:
    """The training seeds of one variant: train.seed, train.seed + 1, ... (train.replicates of them)."""
    return list(range(params.train.seed, params.train.seed + params.train.replicates))


def train_seed(params: Params, seed: int, local_rank: int = 0) -> dict[str, Any]:
    """One seed of train(), alone in this process: what a fanned-out task runs (flows/fanout.py). The files and the
    summary are those train() writes for that seed; join_seeds() completes the variant. `local_rank` picks the CUDA
    device under train.device auto (one per Dask worker)."""
    cfg = params.train
    hardware = devices.configure(cfg.device, cfg.precision, cfg.data_on_device, local_rank)
    with devices.compute_settings(cfg.threads, cfg.matmul_precision, hardware.device), devices.flush_denormals():
        return _fit_seed(params, seed, False, ddp.Dist(), hardware)


def join_seeds(params: Params, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The variant's result from its seeds' summaries: the one run, or the replicate chosen on validation."""
    out_dir = Path(params.train.out_dir) / params.train.variant
    return runs[0] if params.train.replicates == 1 else select_replicate(runs, out_dir)


def _fit_seed(params: Params, seed: int, resume: bool, ctx: ddp.Dist, hardware: devices.Hardware) -> dict[str, Any]:
    """Train one seed into its folder: the variant's own with one replicate, else replicates/seed-<seed>/. dvclive's
    curves are those of train.seed."""
    cfg, variant = params.train, params.train.variant
    out_dir, live_dir = Path(cfg.out_dir) / variant, Path(cfg.live_dir) / variant
    if cfg.replicates == 1:
        if ctx.is_main:
            shutil.rmtree(out_dir / REPLICATES, ignore_errors=True)  # left by an earlier run with replicates
        return _fit(params, variant, resume, ctx, hardware, seed, out_dir, live_dir)
    folder = out_dir / REPLICATES / f"seed-{seed}"
    return _fit(params, variant, resume, ctx, hardware, seed, folder, live_dir if seed == cfg.seed else None)


def _fit(
    params: Params,
    variant: str,
    resume: bool,
    ctx: ddp.Dist,
    hardware: devices.Hardware,
    seed: int,
    out_dir: Path,
    live_dir: Path | None,
) -> dict[str, Any]:
    """The epoch loop behind train() for one seed: validation, schedule, early stopping, checkpoints, metrics.
    The data's binarization keeps train.seed, so every replicate is validated on the same images."""
    cfg = params.train
    started = time.perf_counter()
    prepared = Path(params.data.out_dir)
    data_sha256 = manifest_sha256(prepared)
    x_train, x_val = load_images(prepared, params.model.likelihood, cfg.binarize, cfg.seed)
    n_val = x_val.shape[0]
    config = model_config(params, x_train.shape[1])

    torch.manual_seed(seed)
    vae = VAE(config).to(hardware.device)
    kl_weight = 1.0 if VARIANTS[variant].kl else 0.0
    objective = Objective(vae, cfg.objective, cfg.samples, VARIANTS[variant].latent, cfg.kl, kl_weight)
    optimizer = build_optimizer(vae.parameters(), cfg, hardware.device)
    scheduler = build_scheduler(optimizer, cfg)
    run = {"epoch": 0, "best_loss": float("inf"), "best_epoch": 0, "bad_epochs": 0, "history": []}
    if resume and (out_dir / "last.pt").exists():
        run = restore_training(out_dir / "last.pt", vae, optimizer, scheduler, config, variant, data_sha256)
        override_lr(optimizer, scheduler, run.pop("lr"), cfg.lr)
        for group in optimizer.param_groups:  # the restored state carries the saved betas; params win
            group["betas"] = (cfg.adam_beta1, cfg.adam_beta2)

    step_module = ddp.wrap(objective, ctx, hardware.device)
    if cfg.compile:
        step_module = torch.compile(step_module)
    data = devices.place_data(x_train, hardware)
    val_rows = torch.arange(x_val.shape[0]).tensor_split(ctx.world_size)[ctx.rank]
    x_val = x_val[val_rows].to(hardware.device) if hardware.data_on_device else x_val[val_rows].pin_memory()
    live = (
        BackgroundLive(live_dir, resume=resume and run["epoch"] > 0) if ctx.is_main and live_dir is not None else None
    )
    stopped_early = run["bad_epochs"] >= cfg.early_stopping_patience > 0
    train_seconds = 0.0

    first_epoch, loop_start = run["epoch"], time.perf_counter()
    for epoch in range(run["epoch"], cfg.epochs if not stopped_early else run["epoch"]):
        objective.beta = kl_beta(epoch, cfg.kl_warmup_epochs) * kl_weight
        objective.generator = devices.generator(hardware.device, devices.derive_seed(seed, NOISE, ctx.rank, epoch))
        shuffle = torch.Generator().manual_seed(devices.derive_seed(seed, SHUFFLE, epoch))
        order = ddp.shard(torch.randperm(x_train.shape[0], generator=shuffle), ctx)
        epoch_data = EpochData(data, order, hardware, dynamic_binarize=cfg.binarize == "dynamic")
        tick = time.perf_counter()
        with EpochProgress(
            order.shape[0], f"{variant} seed {seed} {epoch + 1}/{cfg.epochs}", enabled=ctx.is_main
        ) as progress:
            totals = train_epoch(
                step_module,
                objective,
                optimizer,
                epoch_data,
                cfg.batch_size_at(epoch),
                cfg.grad_clip,
                progress.callback,
            )
            train_metrics = summarize(ddp.all_reduce_sum(totals, ctx), order.shape[0] * ctx.world_size)
        seconds = time.perf_counter() - tick
        train_seconds += seconds
        val_gen = devices.generator(hardware.device, devices.derive_seed(seed, VALIDATION, ctx.rank))
        val_totals = validation_sums(objective, x_val, cfg.val_batch_size, hardware, val_gen, cfg.spread_samples)
        val_metrics = summarize(ddp.all_reduce_sum(val_totals, ctx), n_val)
        if not (is_finite(train_metrics) and is_finite(val_metrics)):
            kept = (
                f"the last good checkpoint {out_dir / 'last.pt'} (epoch {run['epoch']}) is kept"
                if run["epoch"]
                else f"nothing was written; earlier files in {out_dir} are untouched"
            )
            raise TrainingDiverged(
                f"train ({variant}): the loss became {train_metrics['loss']} (validation {val_metrics['loss']}) "
                f"in epoch "
                f"{epoch + 1}; stopped, and {kept}. Lower train.lr, set train.grad_clip, or check the data."
            )
        improved = val_metrics["loss"] < run["best_loss"]
        if improved:
            run.update(best_loss=val_metrics["loss"], best_epoch=epoch + 1, bad_epochs=0)
        else:
            run["bad_epochs"] += 1
        record = epoch_record(epoch, train_metrics, val_metrics, objective, optimizer, cfg)
        step_scheduler(scheduler, val_metrics["loss"])
        run.update(epoch=epoch + 1, history=[*run["history"], record])
        if ctx.is_main:
            state = training_state(vae, optimizer, scheduler, config, params, variant, data_sha256, run)
            save_checkpoint([out_dir / "last.pt", *([out_dir / "best.pt"] if improved else [])], state)
            done = epoch + 1 - first_epoch  # epochs run by this call (a resumed run starts later)
            log_epoch(
                live.get() if live is not None else None,
                record,
                cfg.epochs,
                order.shape[0] * ctx.world_size / seconds,
                (time.perf_counter() - loop_start) / done * (cfg.epochs - epoch - 1),
                f"{variant} seed {seed}: " if cfg.replicates > 1 else "",
            )
        ddp.barrier(ctx)
        if run["bad_epochs"] >= cfg.early_stopping_patience > 0:
            stopped_early = True
            break

    digests = ddp.gather_digests(vae, ctx)
    if len(set(digests)) > 1:
        raise TrainingDiverged(
            f"train ({variant}): the DistributedDataParallel replicas ended with different weights: {digests}"
        )
    summary = {
        "variant": variant,
        "seed": seed,
        "latent": VARIANTS[variant].latent,
        "kl_term": VARIANTS[variant].kl,
        "objective": cfg.objective,
        "samples": cfg.samples,
        "epochs_run": run["epoch"],
        "best_epoch": run["best_epoch"],
        "best_val_loss": run["best_loss"],
        "stopped_early": stopped_early,
        "final": run["history"][-1] if run["history"] else {},
        "train_seconds": round(train_seconds, 3),
        "seconds": round(time.perf_counter() - started, 3),
        "device": str(hardware.device),
        "precision": hardware.precision,
        "matmul_precision": torch.get_float32_matmul_precision(),
        "threads": torch.get_num_threads(),
        "world_size": ctx.world_size,
        "weights_sha256": digests[0],
        "rank_weights_sha256": digests,
        "data_sha256": data_sha256,
        "best": str(out_dir / "best.pt"),
        "last": str(out_dir / "last.pt"),
    }
    if ctx.is_main:
        if live is not None:
            live.get().end()
        write_json_atomic(out_dir / "train.json", rounded({k: v for k, v in summary.items() if k not in TIMINGS}))
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """CLI options of `vaeops train`."""
    parser.add_argument(
        "--resume", action="store_true", help="continue from <out_dir>/<variant>/last.pt when it exists"
    )


def run_cli(args: argparse.Namespace) -> None:
    """`vaeops train`: train one model and print its summary (rank 0 only under torchrun)."""
    summary = train(load_params(args.params, args.overrides), resume=args.resume)
    if ddp.from_env().is_main:
        print(json.dumps(summary, indent=2))
