"""DistributedDataParallel for real: `torchrun` starts two CPU processes (gloo) that train one model together."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from vaeops.dataset.splits import write_prepared
from vaeops.model.checkpoint import load_model
from vaeops.training.ddp import Dist, shard, weights_digest


def test_shards_split_the_permutation_evenly_and_disjointly():
    import torch

    order = torch.randperm(103, generator=torch.Generator().manual_seed(0))
    parts = [shard(order, Dist(rank, 3, rank)) for rank in range(3)]
    assert [len(p) for p in parts] == [34, 34, 34]  # the uneven tail is dropped: every rank runs the same steps
    assert len(set(torch.cat(parts).tolist())) == 102


@pytest.mark.slow
def test_two_process_gloo_run_trains_and_its_ranks_agree(tmp_path, project):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images, labels = (bunch.images / 16.0).astype(np.float32), bunch.target.astype(np.int64)
    parts = {"train": slice(0, 1200), "val": slice(1200, 1500), "test": slice(1500, None)}
    write_prepared(project / "prepared", {k: (images[s], labels[s]) for k, s in parts.items()}, {"dataset": "digits"})
    raw = yaml.safe_load((project / "params.yaml").read_text())
    raw["data"]["out_dir"] = "prepared"
    raw["model"].update(hidden=[32], latent_dim=4)
    raw["train"].update(epochs=3, batch_size=32, threads=1, device="cpu")
    (project / "params.yaml").write_text(yaml.safe_dump(raw))

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "vaeops.cli",
        "train",
        "--params",
        "params.yaml",
    ]
    done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]

    summary = json.loads((project / "models" / "vae" / "train.json").read_text())
    assert summary["world_size"] == 2 and summary["epochs_run"] == 3
    digests = summary["rank_weights_sha256"]
    assert len(digests) == 2 and digests[0] == digests[1]  # gradients were averaged: replicas stayed identical
    vae, state = load_model(project / "models" / "vae" / "last.pt")
    assert weights_digest(vae) == digests[0]
    history = state["run"]["history"]
    assert history[-1]["val/loss"] < history[0]["val/loss"]
