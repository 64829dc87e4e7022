"""HTTP speed over loopback: the JSON API, OIP JSON and OIP binary side by side, at concurrency 1, 8 and 32, against
the floor: a raw FastAPI app that echoes the OIP binary body, measured in the same run.

The real `vaeops serve` runs in its own process(es) on 127.0.0.1 with a 784-400-20 model (random weights, exported by
the export stage), once with one worker and once with `--workers 2`. Load comes from wrk (a C load generator, one
thread, one keep-alive connection per concurrent client; `apt-get install wrk`), so the client costs little of the
cores it shares with the server. Every row is single-image mean reconstruction: `/reconstruct` with JSON,
`/v2/models/reconstruct_mean/infer` with JSON tensors, and the same with binary tensors in and out. Each row also
gives the CPU time per request of the server (all its processes and threads, from /proc) and of wrk (getrusage):
where the cores went. Then, in the same run, gRPC against HTTP binary from one Python client (bench/grpc_speed.py:
wrk speaks HTTP only).

    .venv/bin/python bench/http_speed.py [--seconds 5] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1] / "tests")]

import grpc_speed  # noqa: E402
from inference_speed import build_export  # noqa: E402
from serve_process import start_server  # noqa: E402

LUA = """
wrk.method = "POST"
local file = io.open(os.getenv("VAEOPS_BODY"), "rb")
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = os.getenv("VAEOPS_CONTENT_TYPE")
local header = os.getenv("VAEOPS_HEADER_LENGTH")
if header ~= nil and header ~= "" then wrk.headers["Inference-Header-Content-Length"] = header end
"""


def payloads(image: np.ndarray) -> dict[str, tuple[str, bytes, str, str]]:
    """name -> (path, body, content type, Inference-Header-Content-Length) of one single-image request."""
    values = [float(v) for v in image]
    header = json.dumps(
        {
            "inputs": [
                {"name": "x", "shape": [1, 784], "datatype": "FP32", "parameters": {"binary_data_size": 784 * 4}}
            ],
            "outputs": [{"name": "x_hat", "parameters": {"binary_data": True}}],
        }
    ).encode()
    return {
        "JSON API `/reconstruct`": (
            "/reconstruct",
            json.dumps({"images": values, "mode": "mean"}).encode(),
            "application/json",
            "",
        ),
        "OIP, JSON tensors": (
            "/v2/models/reconstruct_mean/infer",
            json.dumps({"inputs": [{"name": "x", "shape": [1, 784], "datatype": "FP32", "data": values}]}).encode(),
            "application/json",
            "",
        ),
        "OIP, binary tensors": (
            "/v2/models/reconstruct_mean/infer",
            header + image.astype("<f4").tobytes(),
            "application/octet-stream",
            str(len(header)),
        ),
    }


ECHO_APP = """
from fastapi import FastAPI, Request
from fastapi.responses import Response

app = FastAPI()


@app.post("/echo")
async def echo(request: Request) -> Response:
    return Response(await request.body(), media_type="application/octet-stream")
"""


def start_echo(root: Path) -> tuple[subprocess.Popen, str]:
    """The floor: uvicorn (same settings as vaeops serve: one worker, httptools, uvloop) on a raw FastAPI echo."""
    (root / "echo_app.py").write_text(ECHO_APP)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "echo_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=root,
    )
    time.sleep(2.0)
    return process, f"http://127.0.0.1:{port}"


def tree_cpu(pid: int) -> float:
    """CPU seconds used so far by a server process and its worker processes, all their threads (Linux /proc)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(stat.parent.name))
    return sum(grpc_speed.server_cpu(p) for p in (pid, *children))


def wrk(
    url: str, script: Path, body: Path, content_type: str, header: str, concurrency: int, seconds: int, pid: int
) -> dict:
    """One wrk run; p50/p99 latency (ms), requests/s, and the server's (`pid` and its workers) and wrk's CPU per
    request (us), refusing runs with non-2xx answers or socket errors."""
    env = {**os.environ, "VAEOPS_BODY": str(body), "VAEOPS_CONTENT_TYPE": content_type, "VAEOPS_HEADER_LENGTH": header}
    served, used = tree_cpu(pid), resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        env=env,
        timeout=seconds + 60,
    ).stdout
    served, after = tree_cpu(pid) - served, resource.getrusage(resource.RUSAGE_CHILDREN)
    client = after.ru_utime + after.ru_stime - used.ru_utime - used.ru_stime  # wrk: the only child waited for here
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"wrk saw failed requests:\n{out}")

    def ms(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)$", out, re.M).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    requests = int(re.search(r"(\d+) requests in", out).group(1))
    return {
        "p50": ms("50"),
        "p99": ms("99"),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "server_us": served / requests * 1e6,
        "client_us": client / requests * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="length of each wrk run (whole seconds)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="server worker counts to compare")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench/http_speed.py needs wrk, a C load generator: apt-get install wrk")
    image = np.random.default_rng(0).random(784).astype(np.float32)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _, onnx_dir = build_export(root, None)
        script = root / "post.lua"
        script.write_text(LUA)
        floor = {}
        echo, echo_url = start_echo(root)
        try:
            _, body, content_type, header = payloads(image)["OIP, binary tensors"]
            (root / "body.bin").write_bytes(body)
            wrk(echo_url + "/echo", script, root / "body.bin", content_type, header, 8, 1, echo.pid)  # warm-up
            for concurrency in args.concurrency:
                result = wrk(
                    echo_url + "/echo",
                    script,
                    root / "body.bin",
                    content_type,
                    header,
                    concurrency,
                    args.seconds,
                    echo.pid,
                )
                floor[concurrency] = result
                rows.append((0, "echo floor (raw FastAPI, OIP binary body)", len(body), concurrency, result))
        finally:
            echo.terminate()
            echo.wait(timeout=30)
        for workers in args.workers:
            process, port, _ = start_server(root, onnx_dir, workers)
            url = f"http://127.0.0.1:{port}"
            try:
                for name, (path, body, content_type, header) in payloads(image).items():
                    body_file = root / "body.bin"
                    body_file.write_bytes(body)
                    wrk(url + path, script, body_file, content_type, header, 8, 1, process.pid)  # warm-up
                    for concurrency in args.concurrency:
                        result = wrk(
                            url + path, script, body_file, content_type, header, concurrency, args.seconds, process.pid
                        )
                        rows.append((workers, name, len(body), concurrency, result))
            finally:
                process.terminate()
                process.wait(timeout=30)
        # gRPC in the same run: wrk speaks HTTP only, so one Python client drives gRPC and HTTP binary alike
        process, http_port, grpc_port = start_server(root, onnx_dir, grpc=True)
        try:
            import uvloop

            both = uvloop.run(grpc_speed.measure(http_port, grpc_port, args.concurrency, args.seconds, process.pid))
        finally:
            process.terminate()
            process.wait(timeout=30)
    print(
        f"vaeops serve, 784-400-20 model, single-image mean reconstruction, wrk -t1, {args.seconds:g} s per row, "
        f"{os.cpu_count()} CPUs shared by client and server\n"
    )
    print(
        "| workers | protocol | body (bytes) | concurrency | p50 (ms) | p99 (ms) | requests/s | vs echo floor | "
        "server CPU / request (us) | wrk CPU / request (us) |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for workers, name, size, concurrency, r in rows:
        print(
            f"| {workers or '-'} | {name} | {size:,} | {concurrency} | {r['p50']:.2f} | {r['p99']:.2f} | "
            f"{r['rps']:,.0f} | {r['rps'] / floor[concurrency]['rps']:.2f} | {r['server_us']:.0f} | "
            f"{r['client_us']:.0f} |"
        )
    print("\ngRPC and HTTP binary (1 worker) from one Python asyncio client, same run:\n")
    print(grpc_speed.table(both))


if __name__ == "__main__":
    main()
