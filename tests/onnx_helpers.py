"""Test helpers for the ONNX and serving tests: a tiny prepared data set, a random VAE checkpoint, params pointing
at them, and a real `vaeops serve` subprocess."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import yaml

from helpers import complete_params
from vaeops.core.params import Params, load_params
from vaeops.dataset import splits
from vaeops.model.checkpoint import save_checkpoint
from vaeops.model.vae import VAE, ModelConfig

IMAGE_SHAPE = (8, 8)


def make_prepared(out_dir: Path, image_shape: tuple[int, int] = IMAGE_SHAPE, seed: int = 0) -> str:
    """Write a small prepared data set (random grey images in [0, 1]); return its data version."""
    rng = np.random.default_rng(seed)
    data = {}
    for name, count in (("train", 40), ("val", 10), ("test", 30)):
        images = rng.random((count, *image_shape), dtype=np.float32)
        data[name] = (images, rng.integers(0, 10, count))
    splits.write_prepared(out_dir, data, {"dataset": "test-random", "image_shape": list(image_shape)})
    return splits.manifest_sha256(out_dir)


def make_checkpoint(
    path: Path,
    data_sha256: str,
    likelihood: str = "bernoulli",
    hidden: tuple[int, ...] = (16,),
    latent_dim: int = 3,
    input_dim: int = IMAGE_SHAPE[0] * IMAGE_SHAPE[1],
    seed: int = 0,
) -> VAE:
    """Save a randomly initialised VAE as a checkpoint in the format `vaeops train` writes; return the model."""
    torch.manual_seed(seed)
    config = ModelConfig(input_dim=input_dim, hidden=hidden, latent_dim=latent_dim, likelihood=likelihood)
    model = VAE(config).eval()
    save_checkpoint(
        path,
        {
            "model_config": config.to_dict(),
            "model_state": model.state_dict(),
            "data_sha256": data_sha256,
            "params": {"train": {"variant": "vae", "seed": seed}},
            "epoch": 0,
        },
    )
    return model


def make_project(root: Path, **checkpoint_options) -> tuple[Params, VAE]:
    """Prepared data, a checkpoint and a params.yaml under `root` (absolute paths); return the params and model."""
    data_sha = make_prepared(root / "data" / "prepared")
    model = make_checkpoint(root / "models" / "vae" / "best.pt", data_sha, **checkpoint_options)
    raw = {
        "data": {"out_dir": str(root / "data" / "prepared")},
        "export": {
            "checkpoint": str(root / "models" / "vae" / "best.pt"),
            "out_dir": str(root / "models" / "onnx"),
            "metrics": str(root / "reports" / "metrics.json"),
        },
        "serve": {
            "model_dir": str(root / "models" / "onnx"),
            "max_batch": 16,
            "max_samples": 8,
            "max_body_bytes": 200_000,
        },
    }
    (root / "params.yaml").write_text(yaml.safe_dump(complete_params(raw)), encoding="utf-8")
    return load_params(root / "params.yaml"), model


STARTUP_SECONDS = 90


class Server:
    """A `vaeops serve` subprocess; its stderr is drained by a thread so the pipe never fills."""

    def __init__(self, args: list[str]):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vaeops.cli", "serve", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(iter(self.process.stdout.readline, "")), daemon=True).start()

    def url(self) -> str:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            for line in list(self.lines):
                found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
                if found:
                    return found.group(1)
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}: {''.join(self.lines)}")
            time.sleep(0.05)
        raise AssertionError(f"server did not start in {STARTUP_SECONDS} s: {''.join(self.lines)}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextmanager
def serving_with_grpc(params_file: Path, *overrides: str) -> Iterator[tuple[str, str]]:
    """A real `vaeops serve` with the OIP over gRPC on free ports: (HTTP host:port, gRPC host:port)."""
    args = ["--params", str(params_file), "-S", "serve.port=0", "-S", "serve.grpc_port=0"]
    server = Server(args + [a for o in overrides for a in ("-S", o)])
    try:
        url = server.url()
        deadline, address = time.monotonic() + STARTUP_SECONDS, None
        while address is None:
            found = [m.group(1) for line in list(server.lines) if (m := re.search(r"gRPC .* on (\S+:\d+)", line))]
            address = found[0] if found else None
            assert address or time.monotonic() < deadline, "".join(server.lines)
            time.sleep(0.05)
        yield url.removeprefix("http://"), address
    finally:
        server.stop()
