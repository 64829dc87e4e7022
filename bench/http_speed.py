"""HTTP speed over loopback: p50/p99 latency and requests/s of single-image mean reconstruction at concurrency 1 and 8.

The real `vaeops serve` runs in its own process on 127.0.0.1 with a 784-400-20 model (random weights, exported by
the export stage); a bounded number of requests is sent by 1 or 8 client threads, each with its own keep-alive
connection. Client and server share the machine's cores, as they would on one host.

    .venv/bin/python bench/http_speed.py [--requests 2000] [--threads 0]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inference_speed import build_export  # noqa: E402


def start_server(root: Path, onnx_dir: Path, threads: int) -> tuple[subprocess.Popen, str]:
    """Start `vaeops serve` on a free loopback port; return the process and its base URL."""
    params = root / "serve.yaml"
    params.write_text(f"serve: {{model_dir: {onnx_dir}, threads: {threads}, max_batch: 256}}\n")
    process = subprocess.Popen([sys.executable, "-m", "vaeops.cli", "serve", "--params", str(params), "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    for line in iter(process.stdout.readline, ""):
        found = re.search(r"Uvicorn running on (http://127\.0\.0\.1:\d+)", line)
        if found:
            threading.Thread(target=lambda: process.stdout.read(), daemon=True).start()  # keep the pipe drained
            return process, found.group(1)
        if time.monotonic() > deadline:
            break
    process.kill()
    raise SystemExit(f"server did not start (exit code {process.poll()})")


def load(url: str, body: bytes, concurrency: int, requests: int) -> tuple[np.ndarray, float]:
    """Send `requests` POSTs split over `concurrency` threads; return per-request seconds and the wall time."""
    latencies: list[float] = []
    lock = threading.Lock()
    headers = {"content-type": "application/json"}

    def worker(count: int) -> None:
        mine = []
        with httpx.Client(base_url=url, timeout=30) as client:
            for _ in range(count):
                start = time.perf_counter()
                response = client.post("/reconstruct", content=body, headers=headers)
                mine.append(time.perf_counter() - start)
                if response.status_code != 200:
                    raise SystemExit(f"request failed: {response.status_code} {response.text[:200]}")
        with lock:
            latencies.extend(mine)

    shares = [requests // concurrency + (i < requests % concurrency) for i in range(concurrency)]
    workers = [threading.Thread(target=worker, args=(n,)) for n in shares]
    start = time.perf_counter()
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return np.array(latencies), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per concurrency level")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads in the server (0 = default)")
    args = parser.parse_args()
    image = np.random.default_rng(0).random(784).round(4).tolist()
    body = httpx.Request("POST", "http://x", json={"images": image, "mode": "mean"}).content
    with tempfile.TemporaryDirectory() as tmp:
        _, onnx_dir = build_export(Path(tmp), None)
        process, url = start_server(Path(tmp), onnx_dir, args.threads)
        try:
            load(url, body, 1, 200)  # warm-up: connections, thread pool, onnxruntime arenas
            print(f"vaeops serve on {url}, 784-400-20 model, single-image mean reconstruction, "
                  f"{len(body):,}-byte request body, {args.requests} requests per row\n")
            print("| concurrency | p50 latency (ms) | p99 latency (ms) | requests/s |")
            print("|---:|---:|---:|---:|")
            for concurrency in (1, 8):
                latencies, wall = load(url, body, concurrency, args.requests)
                print(f"| {concurrency} | {np.median(latencies) * 1e3:.2f} | {np.percentile(latencies, 99) * 1e3:.2f} | "
                      f"{len(latencies) / wall:,.0f} |")
        finally:
            process.terminate()
            process.wait(timeout=10)


if __name__ == "__main__":
    main()
