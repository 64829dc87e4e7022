"""Benchmark the K = 5000 importance-sampled NLL on the 10,000 MNIST test images (784-400-20), against an eager loop.

Without --checkpoint it prepares MNIST and trains the model with the project's own stage functions (`prepare`,
`train`: dynamic binarization, --epochs epochs), then binarizes the test set once (fixed, recorded seed, as in the
IWAE paper). It times `vaeops.model.estimators.nll_estimate` on all test images, and a straightforward eager loop (per
image, per chunk of samples, objective.log_importance_weights + iwae_bound) on a subset, extrapolated, for the ratio.

    python bench/nll_eval.py --mnist ../shared/data/mnist --epochs 10
    python bench/nll_eval.py --checkpoint models/vae/best.pt --prepared data/prepared
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import torch

from vaeops.core.params import load_params
from vaeops.data.prepare import prepare
from vaeops.dataset.splits import load_split, manifest_sha256
from vaeops.model.binarize import binarize_static
from vaeops.model.checkpoint import load_model
from vaeops.model.estimators import (
    available_cores,
    bf16_matmul_supported,
    nll_estimate,
    paired_summary,
    reconstruction_errors,
)
from vaeops.model.objectives import iwae_bound, log_importance_weights
from vaeops.training.train import train

REPO = Path(__file__).resolve().parents[1]
TEST_BINARIZATION_SEED = 0  # the one fixed draw of the binary test set (recorded so the NLL can be reproduced)


def train_model(mnist: Path, epochs: int, workdir: Path) -> tuple[Path, Path]:
    """Prepare MNIST and train the 784-400-20 VAE with the project's stage functions; return (checkpoint, prepared)."""
    overrides = {
        "data.dataset": "mnist",
        "data.source_dir": str(mnist),
        "data.out_dir": str(workdir / "prepared"),
        "model.hidden": [400],
        "model.latent_dim": 20,
        "model.activation": "relu",
        "train.epochs": epochs,
        "train.batch_size": 128,
        "train.binarize": "dynamic",
        "train.early_stopping_patience": 0,
        "train.out_dir": str(workdir / "models"),
        "train.live_dir": str(workdir / "live"),
    }
    params = load_params(REPO / "params.yaml", overrides)
    started = time.perf_counter()
    prepare(params)
    train(params)
    print(f"prepared MNIST and trained 784-400-20 for {epochs} epochs in {time.perf_counter() - started:.0f} s")
    return workdir / "models" / "vae" / "best.pt", workdir / "prepared"


def eager_nll(model, x: torch.Tensor, samples: int, chunk: int, seed: int) -> torch.Tensor:
    """The straightforward loop: one image at a time, `chunk` samples per call of the objective's helpers."""
    generator = torch.Generator().manual_seed(seed)
    out = []
    with torch.inference_mode():
        for i in range(len(x)):
            log_w = torch.cat(
                [
                    log_importance_weights(model, x[i : i + 1], min(chunk, samples - s), generator)
                    for s in range(0, samples, chunk)
                ]
            )
            out.append(-iwae_bound(log_w))
    return torch.cat(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist", type=Path, default=REPO.parent / "shared" / "data" / "mnist")
    parser.add_argument("--checkpoint", type=Path, help="evaluate this checkpoint instead of training one")
    parser.add_argument("--prepared", type=Path, help="prepared data folder of --checkpoint")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--k", type=int, default=5000)
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--chunk-images", type=int, default=16)
    parser.add_argument("--chunk-samples", type=int, default=64)
    parser.add_argument("--baseline-images", type=int, default=40, help="test images the eager loop runs on")
    parser.add_argument("--baseline-chunk", type=int, default=1000, help="samples per call in the eager loop")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--recon-samples", type=int, default=16, help="S of the mean-vs-sampled reconstruction gap")
    parser.add_argument(
        "--workdir", type=Path, help="keep the prepared data and trained model here (default: a temp dir)"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="nll-bench-") as tmp:
        if args.checkpoint:
            checkpoint, prepared = args.checkpoint, args.prepared
        else:
            checkpoint, prepared = train_model(args.mnist.resolve(), args.epochs, args.workdir or Path(tmp))
        model, _ = load_model(checkpoint, expected_data_sha256=manifest_sha256(prepared))
        images, _ = load_split(prepared, "test")
    x = torch.from_numpy(images.reshape(len(images), -1)[: args.images].copy())
    x = binarize_static(x, TEST_BINARIZATION_SEED)
    decoder_flops = 2 * sum(
        p.numel() for name, p in model.named_parameters() if name.startswith("decoder") and p.dim() == 2
    )
    print(
        f"model {model.config.input_dim}-{'-'.join(map(str, model.config.hidden))}-{model.config.latent_dim}, "
        f"{len(x)} test images (static binarization, seed {TEST_BINARIZATION_SEED}), K = {args.k}, "
        f"{available_cores()} cores, load average {os.getloadavg()[0]:.2f}"
    )

    started = time.perf_counter()
    recon = reconstruction_errors(model, x, args.recon_samples, args.seed, chunk_images=args.chunk_images)
    bce = paired_summary(recon["bce_sampled"], recon["bce_mean_decode"])
    gap = recon["jensen_gap"]
    print(
        f"reconstruction     BCE mean decode {recon['bce_mean_decode'].mean():.2f}, sampled (S = {args.recon_samples}) "
        f"{recon['bce_sampled'].mean():.2f}: sampled - mean {bce['diff_mean']:.2f} [{bce['diff_ci95_low']:.2f}, "
        f"{bce['diff_ci95_high']:.2f}], mean decode better on {bce['share_mean_decode_better']:.1%}; squared error "
        f"{recon['se_mean_decode'].mean():.2f} vs {recon['se_sampled'].mean():.2f}"
    )
    print(
        f"Jensen gap         log p(x|mu) {recon['log_px_mu'].mean():.2f} - E_q[log p(x|z)] "
        f"{recon['e_log_px'].mean():.2f}"
        f" = {gap.mean():.2f} ± {gap.std(ddof=1) / math.sqrt(len(gap)):.2f} nats  "
        f"({time.perf_counter() - started:.1f} s)"
    )

    tflop = decoder_flops * args.k * len(x) / 1e12
    runs = {}
    for precision in ("fp32", "bf16") if bf16_matmul_supported(x.device) else ("fp32",):
        started, cpu_started = time.perf_counter(), time.process_time()
        result = nll_estimate(model, x, args.k, args.seed, args.chunk_images, args.chunk_samples, precision)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        runs[precision] = (result, wall, cpu)
        print(
            f"vaeops {precision:4s}        NLL = {result['nll_nats']:.3f} ± {result['nll_se']:.2f} nats "
            f"({result['nll_bits_per_dim']:.4f} bits/dim) in {wall:.1f} s ({tflop:.1f} TFLOP of decoder matmuls, "
            f"{tflop * 1e3 / wall:.0f} GFLOP/s); CPU time {cpu:.0f} s = {cpu / wall:.2f} cores busy on average"
        )
    if "bf16" in runs:
        diff = runs["bf16"][0]["per_image"] - runs["fp32"][0]["per_image"]
        print(
            f"bf16 - fp32        NLL {diff.mean():+.4f} nats (per image: std {diff.std():.3f}, max |.| "
            f"{abs(diff).max():.3f})"
        )
    result, fast, fast_cpu = runs["fp32"]

    n = min(args.baseline_images, len(x))
    started, cpu_started = time.perf_counter(), time.process_time()
    slow_nll = eager_nll(model, x[:n], args.k, args.baseline_chunk, args.seed)
    slow, slow_cpu = [(t * len(x) / n) for t in (time.perf_counter() - started, time.process_time() - cpu_started)]
    subset = float(result["per_image"][:n].mean())
    print(
        f"eager loop         NLL on the first {n} images = {float(slow_nll.mean()):.2f} (vaeops on the same images: "
        f"{subset:.2f}); extrapolated to {len(x)} images: {slow:.0f} s = {slow / 60:.1f} min, CPU time {slow_cpu:.0f} s"
    )
    for precision, (_, wall, cpu) in runs.items():
        full = wall * 10000 / len(x) * 5000 / args.k  # the target is stated for K = 5000 on all 10,000 test images
        exact = len(x) == 10000 and args.k == 5000
        print(
            f"{precision}: speed-up {slow / wall:.1f}x wall-clock, {slow_cpu / cpu:.1f}x in CPU time; K = 5000 on "
            f"10,000 images {'takes' if exact else 'would take'} {full / 60:.2f} min: "
            f"{'under' if full < 180 else 'OVER'} the 3-minute target"
        )
    if not math.isfinite(result["nll_nats"]):
        raise SystemExit("the NLL estimate is not finite")


if __name__ == "__main__":
    main()
