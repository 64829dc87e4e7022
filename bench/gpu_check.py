"""The GPU path in one run: time-to-loss training, the IWAE paper model, the K = 5000 NLL, DDP, ONNX on CUDA.

On a CUDA machine it runs, with the project's own stage functions:

1. the MNIST 784-400-20 model with the time-to-loss settings (bf16 autocast, data resident on the GPU, batch 128 ->
   512, Adam 6e-3 cosine, 5 epochs; docs/benchmarks.md), its checkpoint chosen on a validation split carved from the
   training images;
2. the IWAE paper model (784-200-200-50 tanh, IWAE bound with k = 5, dynamic binarization) for a fixed number of epochs;
3. the importance-sampled NLL with K = 5000 on the 10,000 test images;
4. two-process DistributedDataParallel training (torchrun) when two GPUs are present;
5. the exported ONNX graphs on onnxruntime's CUDA provider: parity with PyTorch and images/s;

and prints one table (and writes it as JSON with --out). Without CUDA it runs the same code paths on the CPU at tiny
sizes (a few hundred images, one epoch, K = 50), so `make test` runs it (tests/test_bench_gpu_check.py) and it cannot
rot. Real MNIST comes from --mnist; without it, MNIST-shaped images are made from the bundled digits.

    python bench/gpu_check.py --mnist ../shared/data/mnist --out gpu_check.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
FULL = {"train_images": None, "epochs": 5, "iwae_epochs": 10, "nll_k": 5000, "nll_images": 10000, "onnx_images": 10000}
TINY = {"train_images": 256, "epochs": 1, "iwae_epochs": 1, "nll_k": 50, "nll_images": 64, "onnx_images": 64}
TIME_TO_LOSS = {
    "train.batch_size": 128,
    "train.batch_size_schedule": [128, 128, 256, 512, 512],
    "train.lr": 6e-3,
    "train.adam_beta1": 0.8,
    "train.adam_beta2": 0.97,
    "train.lr_schedule": "cosine",
}
IWAE_PAPER = {
    "model.hidden": [200, 200],
    "model.latent_dim": 50,
    "model.activation": "tanh",
    "train.objective": "iwae",
    "train.samples": 5,
    "train.binarize": "dynamic",
    "train.batch_size": 100,
    "train.lr": 1e-3,
}


def mnist_arrays(folder: Path | None, limit: int | None) -> dict[str, np.ndarray]:
    """MNIST as float32 (N, 28, 28) in [0, 1] with labels, train / val (6,000 carved, seeded) / test; digits scaled
    up to 28 x 28 when no MNIST folder is given."""
    if folder is not None and (folder / "train-images-idx3-ubyte.gz").exists():
        from vaeops.data.idx import read_idx

        pools = {
            split: (
                read_idx(folder / f"{prefix}-images-idx3-ubyte.gz") / np.float32(255),
                read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64),
            )
            for split, prefix in (("train", "train"), ("test", "t10k"))
        }
    else:
        from sklearn.datasets import load_digits

        digits = load_digits()
        big = np.zeros((len(digits.images), 28, 28), np.float32)
        big[:, 2:26, 2:26] = np.kron(digits.images / 16.0, np.ones((3, 3)))
        pools = {"train": (big[:1400], digits.target[:1400]), "test": (big[1400:], digits.target[1400:])}
    images, labels = pools["train"]
    order = np.random.default_rng(0).permutation(len(images))
    n_val = min(6000, len(images) // 10)
    val, train = order[:n_val], order[n_val:]
    if limit is not None:
        train, val = train[:limit], val[: max(limit // 4, 32)]
    test_images, test_labels = pools["test"]
    return {
        "train": (images[train], labels[train]),
        "val": (images[val], labels[val]),
        "test": (test_images[: limit or None], test_labels[: limit or None]),
    }


def stage_params(workdir: Path, device: str, changes: dict, name: str = "params.yaml"):
    """The repo's params.yaml, copied into the workdir with this run's folders, device and changes (one seed: this is
    a speed check), and loaded; torchrun reads the same file."""
    from vaeops.core.params import load_params
    from vaeops.lifecycle.record import set_params

    path = workdir / name
    shutil.copy(REPO / "params.yaml", path)
    set_params(
        path,
        {
            "data.out_dir": str(workdir / "prepared"),
            "train.out_dir": str(workdir / "models"),
            "train.live_dir": str(workdir / "live"),
            "train.device": device,
            "train.replicates": 1,
            "train.data_on_device": True,
            "train.precision": "auto",
            "train.threads": 0,
            "train.early_stopping_patience": 0,
            "model.hidden": [400],
            "model.latent_dim": 20,
            "model.activation": "relu",
            "train.variant": "vae",
            "export.checkpoint": str(workdir / "models" / "vae" / "best.pt"),
            "export.out_dir": str(workdir / "onnx"),
            "export.metrics": str(workdir / "metrics.json"),
            "export.parity_images": 64,
            **changes,
        },
    )
    return load_params(path)


def timed_train(params) -> tuple[dict, float]:
    """Train with the stage function; (summary, wall seconds)."""
    from vaeops.training.train import train

    start = time.perf_counter()
    summary = train(params)
    return summary, time.perf_counter() - start


def ddp_row(workdir: Path, sizes: dict) -> dict:
    """Two-process DDP through torchrun on two GPUs; a skipped row with the reason elsewhere."""
    if not torch.cuda.is_available() or torch.cuda.device_count() < 2:
        return {
            "check": "DDP, 2 processes",
            "result": "skipped: needs 2 CUDA devices",
            "detail": f"{torch.cuda.device_count()} found",
        }
    stage_params(
        workdir,
        "cuda",
        {**TIME_TO_LOSS, "train.epochs": sizes["epochs"], "train.out_dir": str(workdir / "ddp")},
        "ddp-params.yaml",
    )
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "-m",
        "vaeops.cli",
        "train",
        "--params",
        str(workdir / "ddp-params.yaml"),
    ]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=workdir, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    return {
        "check": "DDP, 2 processes",
        "result": "ok" if done.returncode == 0 else f"failed ({done.returncode})",
        "detail": f"{seconds:.1f} s incl. start-up" if done.returncode == 0 else done.stderr[-300:],
    }


def onnx_row(params, model, x: torch.Tensor, providers: list[str]) -> dict:
    """Export the graphs, run reconstruct_mean on the chosen provider: max |onnx - torch| and images/s."""
    from vaeops.export.export import export
    from vaeops.serving.inference import OnnxVAE

    export(params)
    served = OnnxVAE(params.export.out_dir, max_batch=len(x), providers=providers)
    images = x.cpu().numpy()
    served.reconstruct(images[:8])  # warm-up: session start-up and provider kernels
    start = time.perf_counter()
    onnx_out = served.reconstruct(images)
    seconds = time.perf_counter() - start
    with torch.inference_mode():
        torch_out = model.cpu().pixel_mean(model.cpu().decode(model.cpu().encode(x.cpu())[0])).numpy()
    error = float(np.abs(onnx_out.reshape(len(x), -1) - torch_out).max())
    return {
        "check": f"ONNX reconstruct_mean on {served.providers[0]}",
        "result": f"{len(x) / seconds:,.0f} images/s",
        "detail": f"max abs(onnx - torch) {error:.1e} on {len(x)} images",
    }


def run(mnist: Path | None, tiny: bool) -> list[dict]:
    """Every check, in order; each row says what ran and what it gave."""
    from vaeops.dataset.splits import load_split, write_prepared
    from vaeops.model.checkpoint import load_model
    from vaeops.model.estimators import nll_estimate

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    sizes = TINY if tiny or not cuda else FULL
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        write_prepared(workdir / "prepared", mnist_arrays(mnist, sizes["train_images"]), {"dataset": "mnist"})
        params = stage_params(workdir, device, {**TIME_TO_LOSS, "train.epochs": sizes["epochs"]})
        summary, seconds = timed_train(params)
        images = len(load_split(workdir / "prepared", "train")[0]) * summary["epochs_run"]
        rows.append(
            {
                "check": f"train 784-400-20, time-to-loss settings, {summary['epochs_run']} epochs",
                "result": f"{seconds:.1f} s ({images / summary['train_seconds']:,.0f} images/s)",
                "detail": f"val -ELBO {summary['best_val_loss']:.2f}; {summary['device']}, {summary['precision']}",
            }
        )
        model, _ = load_model(Path(summary["best"]), map_location=device)
        x_test = torch.from_numpy(load_split(workdir / "prepared", "test")[0][: sizes["nll_images"]].reshape(-1, 784))
        start = time.perf_counter()
        nll = nll_estimate(
            model,
            x_test.to(device),
            sizes["nll_k"],
            seed=0,
            chunk_images=64 if cuda else 16,
            chunk_samples=500 if cuda else 64,
        )
        rows.append(
            {
                "check": f"NLL, K = {sizes['nll_k']}, {len(x_test)} test images",
                "result": f"{time.perf_counter() - start:.1f} s",
                "detail": f"{nll['nll_nats']:.2f} ± {nll['nll_se']:.2f} nats",
            }
        )
        rows.append(
            onnx_row(
                params,
                model,
                x_test[: sizes["onnx_images"]],
                ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda else ["CPUExecutionProvider"],
            )
        )
        paper = stage_params(
            workdir,
            device,
            {**IWAE_PAPER, "train.epochs": sizes["iwae_epochs"], "train.out_dir": str(workdir / "iwae")},
            "iwae-params.yaml",
        )
        summary, seconds = timed_train(paper)
        rows.append(
            {
                "check": f"train IWAE paper model (784-200-200-50 tanh, k = 5), {summary['epochs_run']} epochs",
                "result": f"{seconds:.1f} s",
                "detail": f"val -L_5 {summary['best_val_loss']:.2f}",
            }
        )
        rows.append(ddp_row(workdir, sizes))
        shutil.rmtree(workdir / "onnx", ignore_errors=True)
    return rows


def table(rows: list[dict]) -> str:
    """The rows as one Markdown table, headed by the machine."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device: CPU at tiny sizes"
    lines = [f"torch {torch.__version__}; {gpu}", "", "| check | result | detail |", "| --- | --- | --- |"]
    lines += [f"| {row['check']} | {row['result']} | {row['detail']} |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=Path, default=None, help="folder with the MNIST IDX .gz files")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes even on a GPU (the CPU always uses them)")
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    rows = run(args.mnist, args.tiny)
    print(table(rows))
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
