"""/health latency while heavy inference runs: the event loop must keep answering while the model works.

Starts the real `vaeops serve` (one worker) on 127.0.0.1 over a 784-400-20 model (random weights, exported by the
export stage, as bench/http_speed.py does; or --model-dir), probes
`GET /health` for a few seconds with nothing else running (the floor), then again while a second client loops one
heavy request after another: `/reconstruct` of 256 images with 64 samples each (JSON API), and OIP inference of 256
images on `reconstruct_mean` (JSON tensors). It prints p50, p99 and max latency of /health for each, and the ratio
of p99 to the idle p99.

    .venv/bin/python bench/health_under_load.py [--model-dir DIR] [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import yaml

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1] / "tests")]
from helpers import complete_params  # noqa: E402


def start_server(model_dir: Path, folder: Path) -> tuple[subprocess.Popen, str]:
    """`vaeops serve` on a free loopback port with room for 256-image, 64-sample requests; process and base URL."""
    params = folder / "serve.yaml"
    serve = {
        "model_dir": str(model_dir),
        "max_batch": 256,
        "max_samples": 64,
        "max_body_bytes": 64_000_000,
        "reload_seconds": 0,
    }
    params.write_text(yaml.safe_dump(complete_params({"serve": serve})))
    process = subprocess.Popen(
        [sys.executable, "-m", "vaeops.cli", "serve", "--params", str(params), "-S", "serve.port=0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for line in iter(process.stdout.readline, ""):
        found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        if found:
            threading.Thread(target=process.stdout.read, daemon=True).start()
            return process, found.group(1)
    raise SystemExit(f"vaeops serve did not start (exit {process.wait()})")


def probe(url: str, seconds: float) -> np.ndarray:
    """Latencies (ms) of back-to-back GET /health for `seconds`."""
    latencies = []
    with httpx.Client(base_url=url, timeout=60) as client:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            started = time.perf_counter()
            client.get("/health").raise_for_status()
            latencies.append((time.perf_counter() - started) * 1000)
            time.sleep(0.005)
    return np.array(latencies)


def load(url: str, path: str, body: dict, stop: threading.Event, done: list[float]) -> None:
    """Send the heavy request again and again until `stop`; record each one's duration (s)."""
    with httpx.Client(base_url=url, timeout=600) as client:
        while not stop.is_set():
            started = time.perf_counter()
            client.post(path, json=body).raise_for_status()
            done.append(time.perf_counter() - started)


def main() -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, help="an exported model folder (default: a 784-400-20 export)")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run(args, Path(tmp))


def run(args: argparse.Namespace, tmp: Path) -> None:
    """Export the model if none was given, serve it, measure, print."""
    if args.model_dir is None:
        from inference_speed import build_export

        _, args.model_dir = build_export(tmp / "export", None)
    manifest = json.loads((args.model_dir / "manifest.json").read_text())
    images = np.random.default_rng(0).random((256, manifest["input_dim"])).round(3).tolist()
    heavy = {
        "JSON /reconstruct, 256 images x 64 samples": (
            "/reconstruct",
            {"images": images, "mode": "predictive", "samples": 64},
        ),
        "OIP reconstruct_mean, 256 images": (
            "/v2/models/reconstruct_mean/infer",
            {"inputs": [{"name": "x", "shape": [256, manifest["input_dim"]], "datatype": "FP32", "data": images}]},
        ),
    }
    process, url = start_server(args.model_dir.resolve(), tmp)
    try:
        rows = [("idle (the floor)", probe(url, args.seconds), [])]
        for name, (path, body) in heavy.items():
            stop, done = threading.Event(), []
            worker = threading.Thread(target=load, args=(url, path, body, stop, done))
            worker.start()
            time.sleep(0.5)
            latencies = probe(url, args.seconds)
            stop.set()
            worker.join()
            rows.append((name, latencies, done))
    finally:
        process.terminate()
        process.wait()
    floor = np.percentile(rows[0][1], 99)
    print("| /health while | probes | p50 (ms) | p99 (ms) | max (ms) | p99 / idle p99 | heavy request (s) |")
    print("|---|---|---|---|---|---|---|")
    for name, latencies, done in rows:
        heavy_s = f"{np.median(done):.2f}" if done else "-"
        print(
            f"| {name} | {len(latencies)} | {np.percentile(latencies, 50):.1f} | {np.percentile(latencies, 99):.1f} "
            f"| {latencies.max():.1f} | {np.percentile(latencies, 99) / floor:.1f}x | {heavy_s} |"
        )


if __name__ == "__main__":
    main()
