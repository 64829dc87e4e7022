"""`vaeops serve` in its own process on free loopback ports, for the serving benchmarks."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import complete_params  # noqa: E402


def start_server(root: Path, onnx_dir: Path, workers: int = 1, grpc: bool = False) -> tuple[subprocess.Popen, int, int]:
    """Start `vaeops serve` on the exported model with `workers` workers (and gRPC when asked); return the process,
    its HTTP port and its gRPC port (0 without gRPC) once it listens and its workers have loaded the model."""
    params = root / "serve.yaml"
    params.write_text(
        yaml.safe_dump(complete_params({"serve": {"model_dir": str(onnx_dir), "max_batch": 256, "workers": workers}}))
    )
    command = [sys.executable, "-m", "vaeops.cli", "serve", "--params", str(params), "-S", "serve.port=0"]
    process = subprocess.Popen(
        [*command, *(["-S", "serve.grpc_port=0"] if grpc else [])],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    ports = {"grpc": 0} if not grpc else {}
    deadline = time.monotonic() + 120
    for line in iter(process.stdout.readline, ""):
        if found := re.search(r"listening on http://127\.0\.0\.1:(\d+)", line):
            ports["http"] = int(found.group(1))
        if found := re.search(r"gRPC \(Open Inference Protocol\) on \S+:(\d+)", line):
            ports["grpc"] = int(found.group(1))
        if len(ports) == 2:
            threading.Thread(target=lambda: process.stdout.read(), daemon=True).start()  # keep the pipe drained
            time.sleep(1.0 + workers)  # workers load their own model after the socket is bound
            return process, ports["http"], ports["grpc"]
        if time.monotonic() > deadline:
            break
    process.kill()
    raise SystemExit(f"server did not start (exit code {process.poll()})")
