"""Against the IWAE paper: train its MNIST architecture with the VAE and the IWAE (k = 50) objectives, report K =
5000 NLL.

Burda, Grosse & Salakhutdinov (2016), table 1, one stochastic layer: 784-200-200-50, tanh, Bernoulli likelihood,
dynamic binarization of the training set; test NLL (K = 5000) VAE 86.76 nats, IWAE k = 50 84.78 nats, after 3,280
epochs. Both models here are trained by the project's own `prepare` and `train` stage functions (Adam, batch
--batch-size, a 10% validation split carved out of the 60,000 training images) for --epochs epochs, or for as many
whole epochs as fit in a wall-time budget of --minutes (rounds of epochs, each continued from the last with the train
stage's own resume, which ends bitwise where one uninterrupted run of that many epochs would), then scored from the
best validation checkpoint with `vaeops.model.estimators.nll_estimate` on the test set binarized once with a fixed seed.

    python bench/nll_mnist.py --mnist ../shared/data/mnist --epochs 5
    python bench/nll_mnist.py --objectives iwae --minutes 60 --threads 1   # one objective per core, side by side
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from vaeops.core.params import load_params
from vaeops.data.prepare import prepare
from vaeops.dataset.splits import load_split, manifest_sha256
from vaeops.model.binarize import binarize_static
from vaeops.model.checkpoint import load_model
from vaeops.model.estimators import nll_estimate
from vaeops.training.train import train

REPO = Path(__file__).resolve().parents[1]
TEST_BINARIZATION_SEED = 0
PAPER = {"elbo": 86.76, "iwae": 84.78}  # nats, Burda et al. 2016, table 1, k = 1 VAE and k = 50 IWAE
OBJECTIVES = {"elbo": 1, "iwae": 50}  # objective -> samples per image during training


def epochs(args: argparse.Namespace, objective: str) -> int:
    """Epochs for one objective: --iwae-epochs for IWAE when given (k = 50 costs ~50x per epoch), else --epochs."""
    return args.iwae_epochs if objective == "iwae" and args.iwae_epochs else args.epochs


def train_within(overridden: dict, minutes: float) -> dict:
    """Train for as many whole epochs as fit in `minutes` of wall time: one epoch to measure the pace, then rounds
    sized to the time left, each resuming the run where the last one stopped."""
    started = time.perf_counter()
    deadline = started + 60 * minutes
    params_for = lambda epochs: load_params(REPO / "params.yaml", {**overridden, "train.epochs": epochs})  # noqa: E731
    summary = train(params_for(1))
    while True:
        done = summary["epochs_run"]
        pace = (time.perf_counter() - started) / done
        more = int((deadline - time.perf_counter()) / pace)
        if more < 1:
            return summary
        summary = train(params_for(done + more), resume=True)


def overrides(args: argparse.Namespace, workdir: Path, objective: str) -> dict:
    """params.yaml overrides for one run: the paper's architecture, this objective, this folder."""
    return {
        "data.dataset": "mnist",
        "data.source_dir": str(args.mnist.resolve()),
        "data.out_dir": str(workdir / "prepared"),
        "model.hidden": [200, 200],
        "model.latent_dim": 50,
        "model.activation": "tanh",
        "model.likelihood": "bernoulli",
        "train.objective": objective,
        "train.samples": OBJECTIVES[objective],
        "train.epochs": epochs(args, objective) or 1,
        "train.batch_size": args.batch_size,
        "train.lr": args.lr,
        "train.binarize": "dynamic",
        "train.early_stopping_patience": 0,
        "train.threads": args.threads,
        "train.spread_samples": 0,
        "train.out_dir": str(workdir / objective / "models"),
        "train.live_dir": str(workdir / objective / "live"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist", type=Path, default=REPO.parent / "shared" / "data" / "mnist")
    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument("--epochs", type=int, help="epochs per objective")
    budget.add_argument("--minutes", type=float, help="wall-time budget of the training of each objective")
    parser.add_argument("--iwae-epochs", type=int, help="epochs of the IWAE run (default: --epochs)")
    parser.add_argument("--threads", type=int, default=0, help="train.threads (0 = torch's default, all cores)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--k", type=int, default=5000, help="samples of the NLL estimate")
    parser.add_argument("--images", type=int, default=10000, help="test images scored (all 10,000 by default)")
    parser.add_argument("--objectives", nargs="+", choices=list(OBJECTIVES), default=list(OBJECTIVES))
    parser.add_argument("--workdir", type=Path, help="keep data and models here (default: a temp dir)")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory(prefix="nll-mnist-") as tmp:
        workdir = args.workdir or Path(tmp)
        prepared = workdir / "prepared"
        for objective in args.objectives:
            overridden = overrides(args, workdir, objective)
            params = load_params(REPO / "params.yaml", overridden)
            if not (prepared / "manifest.json").exists():
                prepare(params)
            started = time.perf_counter()
            summary = train_within(overridden, args.minutes) if args.minutes else train(params)
            train_seconds = time.perf_counter() - started
            model, _ = load_model(workdir / objective / "models" / "vae" / "best.pt", manifest_sha256(prepared))
            images, _ = load_split(prepared, "test")
            x = binarize_static(
                torch.from_numpy(images.reshape(len(images), -1)[: args.images].copy()), TEST_BINARIZATION_SEED
            )
            started = time.perf_counter()
            nll = nll_estimate(model, x, args.k, seed=0, chunk_images=16, chunk_samples=64)
            rows.append(
                {
                    "objective": objective,
                    "train_samples": OBJECTIVES[objective],
                    "epochs": summary["epochs_run"],
                    "best_epoch": summary.get("best_epoch"),
                    "train_seconds": round(train_seconds),
                    "nll_seconds": round(time.perf_counter() - started),
                    "test_images": len(x),
                    "nll": round(nll["nll_nats"], 2),
                    "nll_se": round(nll["nll_se"], 2),
                    "paper_nll": PAPER[objective],
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    print(f"\n784-200-200-50 tanh, dynamic binarization, paper trained 3,280 epochs; K = {args.k} test NLL:")
    for row in rows:
        name = "VAE (k = 1)" if row["objective"] == "elbo" else "IWAE (k = 50)"
        print(
            f"  {name:14s} {row['nll']:7.2f} ± {row['nll_se']:.2f} nats   paper {row['paper_nll']:.2f}   "
            f"gap {row['nll'] - row['paper_nll']:+.2f}   ({row['epochs']} epochs in {row['train_seconds']} s, "
            f"NLL on {row['test_images']} images in {row['nll_seconds']} s)"
        )


if __name__ == "__main__":
    main()
