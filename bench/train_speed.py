"""Benchmark the train stage against a plain Dataset/DataLoader loop: the 784-400-20 VAE on MNIST, side by side.

The baseline is the widely used PyTorch VAE example's loop: ReLU, Bernoulli on grey levels, 1 sample, batch 128,
Adam 1e-3, 10 epochs, a test pass after every epoch, written the conventional way (a per-image Dataset, a DataLoader,
default Adam, `loss.item()` every step). The project side is the real stage function `vaeops.train.train` (with its
per-epoch validation on the test images, checkpoints and dvclive logging), run twice on the same model:

- "example settings": exactly the example's batch, learning rate and epochs (same work, faster loop);
- "time-to-loss settings" (--fast-*): the fewest-seconds settings we found that still reach the example's test loss
  (default batch 128, Adam 3e-3 with beta2 0.99 and the per-epoch cosine schedule, 6 epochs), since the target is
  a test loss in wall time, not a fixed amount of work.

    python bench/train_speed.py --mnist ../shared/data/mnist
"""

from __future__ import annotations

import time

T_IMPORT = time.perf_counter()

import argparse  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch._dynamo  # noqa: E402,F401  (torch.optim imports it on first use: about 2 s that any training program pays)
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from vaeops.checkpoint import load_model  # noqa: E402
from vaeops.idx import read_idx  # noqa: E402
from vaeops.model import VAE, ModelConfig  # noqa: E402
from vaeops.objective import elbo_terms  # noqa: E402
from vaeops.params import load_params  # noqa: E402
from vaeops.splits import write_prepared  # noqa: E402
from vaeops.train import train  # noqa: E402

IMPORT_SECONDS = time.perf_counter() - T_IMPORT  # torch + vaeops: paid by either program at start-up
REPO = Path(__file__).resolve().parents[1]
CONFIG = ModelConfig(input_dim=784, hidden=(400,), latent_dim=20)


def load_mnist(folder: Path) -> dict[str, np.ndarray]:
    """The four IDX files as uint8 images (N, 784) and int64 labels, read with the project's IDX reader."""
    arrays = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        arrays[f"{split}_images"] = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz").reshape(-1, 784)
        arrays[f"{split}_labels"] = read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
    return arrays


@torch.no_grad()
def test_nelbo(vae: VAE, x_test: torch.Tensor, seed: int = 0) -> float:
    """Negative ELBO per test image, one sample per image (the number the PyTorch example prints), in fp32."""
    gen = torch.Generator().manual_seed(seed)
    total = sum(float(elbo_terms(vae.eval(), x_test[i : i + 1000], 1, generator=gen).loss) * len(x_test[i : i + 1000])
                for i in range(0, len(x_test), 1000))
    return total / len(x_test)


class GreyImages(Dataset):
    """One image per item, converted to a float tensor on access, like torchvision's MNIST with ToTensor()."""

    def __init__(self, images: np.ndarray):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(self.images[index]).float().div(255)


def run_baseline(folder: Path, epochs: int, threads: int) -> dict[str, float]:
    """The conventional loop: Dataset + DataLoader(shuffle) + default Adam + loss.item() per step + test each epoch.
    Timed from reading the IDX files, as the project side is timed from reading its prepared files."""
    torch.set_num_threads(threads)
    torch.set_float32_matmul_precision("highest")  # torch's default (the project run may have changed it)
    start, cpu_start = time.perf_counter(), time.process_time()
    mnist = load_mnist(folder)
    torch.manual_seed(0)
    vae = VAE(CONFIG)
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-3)
    train_loader = DataLoader(GreyImages(mnist["train_images"]), batch_size=128, shuffle=True)
    test_loader = DataLoader(GreyImages(mnist["test_images"]), batch_size=128)
    epoch_seconds = []
    for _ in range(epochs):
        tick = time.perf_counter()
        vae.train()
        train_loss = 0.0
        for batch in train_loader:
            optimizer.zero_grad()
            loss = elbo_terms(vae, batch, 1).loss
            loss.backward()
            train_loss += loss.item() * len(batch)
            optimizer.step()
        epoch_seconds.append(time.perf_counter() - tick)
        vae.eval()
        with torch.no_grad():
            test_loss = sum(elbo_terms(vae, batch, 1).loss.item() * len(batch) for batch in test_loader) / len(test_loader.dataset)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    x_test = torch.from_numpy(mnist["test_images"]).float().div(255)
    return {"wall": wall, "cpu": cpu, "epoch": float(np.mean(epoch_seconds)), "last_test_loss": test_loss,
            "test_nelbo": test_nelbo(vae, x_test)}


def run_project(mnist: dict[str, np.ndarray], settings: dict, threads: int, precision: str, matmul: str, workdir: Path) -> dict[str, float]:
    """The train stage as `vaeops train` runs it with `settings` (epochs, batch_size, lr, lr_schedule); the MNIST test
    set is its validation split, as in the example."""
    x_train = (mnist["train_images"] / np.float32(255)).reshape(-1, 28, 28).astype(np.float32)
    x_test = (mnist["test_images"] / np.float32(255)).reshape(-1, 28, 28).astype(np.float32)
    prepared = workdir / "prepared"
    splits = {"train": (x_train, mnist["train_labels"]), "val": (x_test, mnist["test_labels"]), "test": (x_test, mnist["test_labels"])}
    write_prepared(prepared, splits, {"dataset": "mnist"})  # the prepare stage's job, not timed
    params = load_params(REPO / "params.yaml", overrides={
        "data.out_dir": str(prepared), "model.hidden": [400], "model.latent_dim": 20, "model.activation": "relu",
        "model.likelihood": "bernoulli", "train.latent": "sample", "train.objective": "elbo", "train.samples": 1,
        "train.kl": "analytic", "train.kl_warmup_epochs": 0, **{f"train.{k}": v for k, v in settings.items()}, "train.grad_clip": 0.0, "train.early_stopping_patience": 0,
        "train.binarize": "none", "train.seed": 0, "train.device": "cpu", "train.threads": threads,
        "train.precision": precision, "train.matmul_precision": matmul, "train.spread_samples": 0, "train.val_batch_size": 2000,
        "train.out_dir": str(workdir / "models"), "train.live_dir": str(workdir / "live"),
    })
    start, cpu_start = time.perf_counter(), time.process_time()
    summary = train(params)
    vae, _ = load_model(workdir / "models" / "sample" / "last.pt")
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {"wall": wall, "cpu": cpu, "epoch": summary["train_seconds"] / settings["epochs"], "last_test_loss": summary["final"]["val/loss"],
            "test_nelbo": test_nelbo(vae, torch.from_numpy(x_test.reshape(-1, 784)))}


def amx_available() -> bool:
    """True on CPUs with AMX tiles, where bf16 matmuls run several times faster than fp32."""
    return bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=Path, default=REPO / ".." / "shared" / "data" / "mnist", help="folder with the MNIST IDX .gz files")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of the baseline and of the example-settings run")
    parser.add_argument("--fast-epochs", type=int, default=6, help="epochs of the time-to-loss run (0 skips it)")
    parser.add_argument("--fast-batch", type=int, default=128, help="batch size of the time-to-loss run")
    parser.add_argument("--fast-lr", type=float, default=3e-3, help="peak Adam learning rate of the time-to-loss run")
    parser.add_argument("--fast-beta2", type=float, default=0.99, help="train.adam_beta2 of the time-to-loss run")
    parser.add_argument("--fast-schedule", choices=("none", "cosine"), default="cosine", help="train.lr_schedule of the time-to-loss run")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of all loops (default 1: on a shared 2-core machine a second OpenMP thread "
                             "waits on busy cores and slows both loops many times over)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="fp32", help="train.precision (bf16 = autocast)")
    parser.add_argument("--matmul-precision", choices=("auto", "highest", "high", "medium"),
                        default="medium" if amx_available() else "auto", help="train.matmul_precision of the project loop "
                        "(default: medium, i.e. bf16 inside oneDNN's fp32 matmuls, on CPUs with AMX)")
    args = parser.parse_args(argv)
    if not (args.mnist / "train-images-idx3-ubyte.gz").exists():
        print(f"MNIST not found in {args.mnist}; pass --mnist", file=sys.stderr)
        return 2
    load_before = os.getloadavg()[0]
    mnist = load_mnist(args.mnist)
    runs = {"example": {"epochs": args.epochs, "batch_size": 128, "lr": 1e-3, "adam_beta2": 0.999, "lr_schedule": "none"}}
    if args.fast_epochs:
        runs["fast"] = {"epochs": args.fast_epochs, "batch_size": args.fast_batch, "lr": args.fast_lr,
                         "adam_beta2": args.fast_beta2, "lr_schedule": args.fast_schedule}
    results = {}
    for name, settings in runs.items():
        with tempfile.TemporaryDirectory() as tmp:
            results[name] = run_project(mnist, settings, args.threads, args.precision, args.matmul_precision, Path(tmp))
    baseline = run_baseline(args.mnist, args.epochs, args.threads)
    n = len(mnist["train_images"])
    threads = f"{args.threads} thread{'s' if args.threads != 1 else ''}"
    print(f"\nMNIST 784-400-20, Bernoulli on grey levels, 1 sample, {threads}; start-up (imports) {IMPORT_SECONDS:.1f} s; "
          f"torch {torch.__version__}; {os.cpu_count()} CPUs, load average {load_before:.1f} before and "
          f"{os.getloadavg()[0]:.1f} after; project loops: precision {args.precision}, matmul {args.matmul_precision}\n")
    print("| loop | settings | s/epoch | samples/s | wall incl. start-up (s) | CPU time (s) | test -ELBO | wall ratio |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    base_wall = baseline["wall"] + IMPORT_SECONDS
    rows = [("Dataset/DataLoader baseline (fp32)", runs["example"], baseline)]
    rows += [(f"vaeops train, {'example' if name == 'example' else 'time-to-loss'} settings", runs[name], results[name]) for name in results]
    for name, settings, result in rows:
        schedule = "" if settings["lr_schedule"] == "none" else f" {settings['lr_schedule']}"
        beta2 = "" if settings["adam_beta2"] == 0.999 else f" beta2 {settings['adam_beta2']:g}"
        described = f"batch {settings['batch_size']}, Adam {settings['lr']:g}{beta2}{schedule}, {settings['epochs']} epochs"
        print(f"| {name} | {described} | {result['epoch']:.2f} | {n / result['epoch']:,.0f} | {result['wall'] + IMPORT_SECONDS:.1f} | "
              f"{result['cpu']:.1f} | {result['test_nelbo']:.1f} | {(result['wall'] + IMPORT_SECONDS) / base_wall:.2f} |")
    print("\nwall ratio = wall incl. start-up / the baseline's (target <= 0.33 at a test -ELBO <= the baseline's, about 105.6)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
