"""What the flow tests share: running commands in the copy, hashing a folder, one real flow run, IDX feeds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

from helpers import REPO
from vaeops.core.fileio import sha256_file
from vaeops.data.idx import write_idx

sys.path.insert(0, str(REPO / "flows"))

# Small settings for every stage, so one full flow run on digits takes seconds.
TINY = {
    "train.epochs": 2,
    "train.replicates": 1,
    "evaluate.recon_samples": 2,
    "evaluate.elbo_ks": [1, 4],
    "evaluate.elbo_repeats": 2,
    "evaluate.nll_k": 16,
    "evaluate.plot_images": 4,
    "evaluate.prior_samples": 4,
    "export.parity_images": 16,
}


def sh(*args: str, cwd: Path) -> str:
    """Run a command in the copy; fail the test with its output if it fails."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def tree(path: Path) -> dict[str, str]:
    """sha256 of every file under a folder, by relative path."""
    return {str(p.relative_to(path)): sha256_file(p) for p in sorted(path.rglob("*")) if p.is_file()}


def run_flow(**parameters):
    """One real flow run; returns its final state and what it recorded on the Prefect server."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    import retrain

    state = retrain.retrain(**parameters, return_state=True)
    runs = FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
    with get_client(sync_client=True) as client:
        artifacts = {a.key: a for a in client.read_artifacts(flow_run_filter=runs)}
        task_runs = client.read_task_runs(flow_run_filter=runs)
    return state, artifacts, task_runs


def digits_feed(folder: Path, drop_class: int | None = None, brightness: float = 1.0, seed: int = 0) -> Path:
    """An MNIST-shaped feed (the four IDX files, 60,000 + 10,000 images of 28x28) made from the bundled digits: each
    8x8 digit scaled up 3x onto a 28x28 canvas at one of 25 offsets, with faint noise so no two images are equal.
    `drop_class` relabels that class's images as the next class (a class gone); `brightness` scales every pixel."""
    digits = load_digits()
    big = np.repeat(np.repeat(np.rint(digits.images * (250 / 16)).astype(np.uint8), 3, axis=1), 3, axis=2)
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, count in (("train", 60000), ("t10k", 10000)):
        pick = rng.integers(0, len(digits.images), count)
        images = rng.integers(0, 6, (count, 28, 28), dtype=np.uint8)
        offsets = rng.integers(0, 25, count)
        for offset in range(25):
            rows = np.flatnonzero(offsets == offset)
            dy, dx = divmod(offset, 5)
            images[rows, dy : dy + 24, dx : dx + 24] += big[pick[rows]]
        if brightness != 1.0:
            images = np.clip(images * np.float32(brightness), 0, 255).astype(np.uint8)
        labels = digits.target[pick].astype(np.uint8)
        if drop_class is not None:
            labels[labels == drop_class] = (drop_class + 1) % 10
        write_idx(folder / f"{prefix}-images-idx3-ubyte", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels)
    return folder
