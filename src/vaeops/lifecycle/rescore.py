"""The fair gate's evidence: champion and challenger scored on the challenger's test split, on the same images.

Both checkpoints (the champion keeps its own as `checkpoint.pt`, read with weights_only) are scored with the same
test images, the same binarization (evaluate.binarize, binarize_seed), the same K (promote.nll_k) and the same
seeded draws; the gate then reads the paired per-image NLL difference and its 95% interval. The input contract
(image shape, likelihood) says whether the two models can be compared at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vaeops.bundle.manifest import CHECKPOINT, Manifest
from vaeops.core.errors import DataError
from vaeops.core.fileio import sha256_bytes, write_bytes_atomic
from vaeops.core.params import Params
from vaeops.core.progress import Progress


def keep_checkpoint(manifest: Manifest, staging: Path) -> None:
    """Copy the export's checkpoint into the champion being installed, if it is there and matches the manifest."""
    source = Path(manifest.checkpoint)
    if not source.is_file():
        return  # an export whose checkpoint is gone: the champion is then compared on its stored NLL only
    data = source.read_bytes()
    if sha256_bytes(data) != manifest.checkpoint_sha256:
        raise DataError(
            f"{source} is not the checkpoint the export was made from (sha256 differs); re-run the pipeline"
        )
    write_bytes_atomic(staging / CHECKPOINT, data)


def paired_nll(champion_checkpoint: Path, challenger_checkpoint: Path, params: Params) -> dict[str, Any]:
    """Both models' NLL on the challenger's evaluation split, per image, and the paired gain champion - challenger."""
    from vaeops.dataset.splits import manifest_sha256
    from vaeops.model.checkpoint import load_model
    from vaeops.model.devices import intra_op_threads
    from vaeops.model.estimators import nll_estimate, paired_summary
    from vaeops.model.images import load_images

    cfg = params.evaluate
    x, _, _ = load_images(params.data.out_dir, cfg.split, cfg.binarize, cfg.binarize_seed)
    champion, _ = load_model(champion_checkpoint)  # trained on other data, maybe: scored on today's on purpose
    challenger, _ = load_model(challenger_checkpoint, expected_data_sha256=manifest_sha256(params.data.out_dir))
    k = params.promote.nll_k
    with (
        intra_op_threads(1),
        Progress(2 * len(x) * k, "promote: champion and challenger on the same images", unit="draw") as progress,
    ):
        nll = {
            name: nll_estimate(model, x, k, cfg.seed, cfg.chunk_images, cfg.chunk_samples, progress=progress)[
                "per_image"
            ]
            for name, model in (("champion", champion), ("challenger", challenger))
        }
    summary = paired_summary(nll["champion"], nll["challenger"])  # champion - challenger: > 0 when the challenger wins
    return {
        "images": int(len(x)),
        "split": cfg.split,
        "binarize": cfg.binarize,
        "k": k,
        "seed": cfg.seed,
        "champion_nll": float(np.mean(nll["champion"])),
        "challenger_nll": float(np.mean(nll["challenger"])),
        "gain": summary["diff_mean"],
        "gain_se": summary["diff_se"],
        "gain_ci95_low": summary["diff_ci95_low"],
        "gain_ci95_high": summary["diff_ci95_high"],
        "share_challenger_better": summary["share_positive"],
    }


def nll_check(paired: dict[str, Any], champion_version: str, margin: float) -> tuple[bool, str]:
    """The gate's NLL rule on shared data: promote when the mean gain exceeds the margin and its 95% CI is above 0."""
    ok = paired["gain"] > margin and paired["gain_ci95_low"] > 0
    return ok, (
        f"on the same {paired['images']} {paired['split']} images (K = {paired['k']}): challenger NLL "
        f"{paired['challenger_nll']:.3f} vs champion {champion_version} {paired['champion_nll']:.3f} nats; "
        f"paired gain {paired['gain']:.3f} [{paired['gain_ci95_low']:.3f}, {paired['gain_ci95_high']:.3f}] "
        + ("above margin " if ok else "needs > margin ")
        + f"{margin} with a 95% CI above 0"
    )
