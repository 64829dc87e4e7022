"""Training seeds: of the runs of one variant (train.replicates), the one exported is chosen on validation data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vaeops.core.artifacts import Artifact, write_artifact
from vaeops.core.fileio import write_bytes_atomic


class Replicate(Artifact):
    """One training seed's run."""

    seed: int
    best_val_loss: float
    best_epoch: int
    folder: str


class ReplicateChoice(Artifact):
    """`models/<variant>/replicates.json`: every seed's run and the one chosen, by which rule."""

    selected_seed: int
    rule: str
    replicates: list[Replicate]


def select_replicate(runs: list[dict[str, Any]], out_dir: Path) -> dict[str, Any]:
    """Copy the replicate with the lowest validation loss up to out_dir: the one model that is exported and gated.
    Validation, not test: the test split stays untouched by every choice made in training."""
    best = min(runs, key=lambda run: run["best_val_loss"])
    for name in ("best.pt", "last.pt", "train.json"):
        write_bytes_atomic(out_dir / name, (Path(best["best"]).parent / name).read_bytes())
    choice = {
        "selected_seed": best["seed"],
        "rule": "lowest validation loss (train.json best_val_loss)",
        "replicates": [
            {
                "seed": run["seed"],
                "best_val_loss": run["best_val_loss"],
                "best_epoch": run["best_epoch"],
                "folder": str(Path(run["best"]).parent),
            }
            for run in runs
        ],
    }
    write_artifact(out_dir / "replicates.json", ReplicateChoice.model_validate(choice))
    return {
        **best,
        **choice,
        "best": str(out_dir / "best.pt"),
        "last": str(out_dir / "last.pt"),
        "seconds": round(sum(run["seconds"] for run in runs), 3),
    }
