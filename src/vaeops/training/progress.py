"""What a person sees during training: a tqdm bar with running loss and images/s, one line per epoch, dvclive files."""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from vaeops.core.artifacts import rounded
from vaeops.training.optim import current_lr
from vaeops.training.trainer import Objective

# Reading the running loss forces a host synchronisation; do it only every this many steps, and only when a bar shows.
POSTFIX_EVERY = 25


class EpochProgress:
    """A per-epoch progress bar; silent when stderr is not a terminal or on ranks other than 0."""

    def __init__(self, total_images: int, description: str, enabled: bool = True):
        self.bar = tqdm(
            total=total_images,
            desc=description,
            unit="img",
            unit_scale=True,
            leave=False,
            dynamic_ncols=True,
            disable=None if enabled else True,
        )
        self.steps = self.seen = 0

    def update(self, images: int, totals: torch.Tensor) -> None:
        """Advance by one batch; refresh the running mean loss now and then."""
        self.steps += 1
        self.seen += images
        self.bar.update(images)
        if self.steps % POSTFIX_EVERY == 0:
            self.bar.set_postfix(loss=f"{totals[0].item() / self.seen:.3f}", refresh=False)

    @property
    def callback(self):
        """The per-step hook for trainer.train_epoch, or None when the bar is off (then the loop never syncs)."""
        return None if self.bar.disable else self.update

    def __enter__(self) -> EpochProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.close()


def open_live(directory: Path, resume: bool):
    """A dvclive logger writing <directory>/metrics.json and plots/metrics/*.tsv (declared in dvc.yaml); no git or
    experiment side effects, since the pipeline, not dvclive, owns dvc.yaml and experiments."""
    from dvclive import (
        Live,  # imported late: it pulls in DVC, which `vaeops train --help` does not need
    )

    summary = directory / "metrics.json"
    if resume and summary.is_file() and not _readable_json(summary):
        # A kill while dvclive rewrote its summary leaves it empty or cut: dvclive would fail to resume on it, and it
        # holds nothing the checkpoint lacks (the step comes from the checkpoint, the next epoch rewrites it).
        summary.unlink()
    return Live(dir=str(directory), resume=resume, save_dvc_exp=False, dvcyaml=False, report=None)


def _readable_json(path: Path) -> bool:
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


class BackgroundLive:
    """open_live on a background thread, so its cost (0.65 s here: importing dvclive with pandas and DVC, and its
    DVC repository lookup) overlaps the first epoch instead of preceding it; `get()` waits for it and re-raises
    any error of the opening."""

    def __init__(self, directory: Path, resume: bool):
        pool = ThreadPoolExecutor(1, thread_name_prefix="open-dvclive")
        self._future = pool.submit(open_live, directory, resume)
        pool.shutdown(wait=False)  # the thread ends with its one task

    def get(self):
        """The opened dvclive logger."""
        return self._future.result()


def log_epoch(
    live, record: dict[str, float], epochs: int, images_per_second: float, eta_seconds: float = 0.0, label: str = ""
) -> None:
    """Log one epoch to dvclive (step = epoch - 1) and print a one-line summary, with throughput and ETA, to stderr."""
    if live is not None:
        live.step = int(record["epoch"]) - 1
        for name, value in record.items():
            if name != "epoch":  # at the precision the files carry (see vaeops.core.artifacts)
                live.log_metric(name, rounded(float(value)))
        live.next_step()
    mc = f", mc_std {record['val/mc_std']:.3f}" if "val/mc_std" in record else ""
    print(
        f"{label}epoch {int(record['epoch'])}/{epochs}: loss {record['train/loss']:.3f} (E log p(x|z) "
        f"{record['train/recon']:.3f}, "
        f"kl {record['train/kl']:.3f}), val {record['val/loss']:.3f}{mc}, {images_per_second:.0f} img/s"
        + (f", ETA {eta_seconds:.0f} s" if int(record["epoch"]) < epochs else ""),
        file=sys.stderr,
        flush=True,
    )


def epoch_record(
    epoch: int, train_metrics: dict, val_metrics: dict, objective: Objective, optimizer, cfg
) -> dict[str, float]:
    """One epoch's metrics as logged to dvclive and kept in the checkpoint history.

    Wall-clock figures stay out of it: these files are DVC outputs, and the same params must give the same bytes.
    """
    record = {"epoch": epoch + 1, "beta": objective.beta, "lr": current_lr(optimizer)}
    record.update(
        {
            f"train/{k}": v
            for k, v in train_metrics.items()
            if k != "mc_std" or cfg.samples > 1 and objective.latent == "sample"
        }
    )
    record.update(
        {
            f"val/{k}": v
            for k, v in val_metrics.items()
            if k != "mc_std" or objective.latent == "sample" and cfg.spread_samples
        }
    )
    return record
