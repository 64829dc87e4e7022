"""gRPC against HTTP with binary tensors on one `vaeops serve`, from the same kind of client, side by side in one run.

wrk speaks HTTP only, so both protocols are driven here by one Python asyncio client process (uvloop) with the same
number of concurrent requests in flight: grpc.aio with KServe v2's generated stubs (what tritonclient uses) for
`ModelInfer` with raw tensor contents, and a minimal keep-alive HTTP/1.1 client over asyncio streams for
`POST /v2/models/reconstruct_mean/infer` with the binary tensor extension. The client costs CPU on the same 2 cores,
so the ratio between the protocols is the result; the absolute rates sit below wrk's.

    .venv/bin/python bench/grpc_speed.py [--seconds 5] [--concurrency 1 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1] / "tests")]

from inference_speed import build_export  # noqa: E402
from serve_process import start_server  # noqa: E402


def server_cpu(pid: int) -> float:
    """CPU seconds the server process has used, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(call, concurrency: int, seconds: float, pid: int) -> dict[str, float]:
    """Keep `concurrency` requests in flight for `seconds`; requests/s, latency percentiles, CPU per request."""
    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    async def one_client(send) -> None:
        while time.perf_counter() < stop:
            started = time.perf_counter()
            await send()
            latencies.append(time.perf_counter() - started)

    senders = [await call() for _ in range(concurrency)]
    started, cpu, served = time.perf_counter(), time.process_time(), server_cpu(pid)
    await asyncio.gather(*(one_client(send) for send in senders))
    elapsed, cpu, served = time.perf_counter() - started, time.process_time() - cpu, server_cpu(pid) - served
    ms = np.array(latencies) * 1e3
    return {
        "rps": len(latencies) / elapsed,
        "p50": float(np.median(ms)),
        "p99": float(np.percentile(ms, 99)),
        "client_us": cpu / len(latencies) * 1e6,  # the client's own CPU per request: it shares the cores
        "server_us": served / len(latencies) * 1e6,
    }


def grpc_client(port: int, image: np.ndarray):
    """A factory of senders sharing one channel (HTTP/2 multiplexes them), each a ModelInfer with raw contents."""
    import grpc
    from tritonclient.grpc import service_pb2 as pb
    from tritonclient.grpc import service_pb2_grpc as rpc

    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = rpc.GRPCInferenceServiceStub(channel)
    request = pb.ModelInferRequest(model_name="reconstruct_mean")
    request.inputs.add(name="x", datatype="FP32", shape=[1, 784])
    request.outputs.add(name="x_hat")
    request.raw_input_contents.append(image.astype("<f4").tobytes())

    async def make():
        async def send() -> None:
            response = await stub.ModelInfer(request)
            assert len(response.raw_output_contents[0]) == 784 * 4

        return send

    return make


def http_client(port: int, image: np.ndarray):
    """A factory of senders, each its own keep-alive connection, POSTing the OIP binary body and reading the reply."""
    header = json.dumps(
        {
            "inputs": [{"name": "x", "shape": [1, 784], "datatype": "FP32", "parameters": {"binary_data_size": 3136}}],
            "outputs": [{"name": "x_hat", "parameters": {"binary_data": True}}],
        }
    ).encode()
    body = header + image.astype("<f4").tobytes()
    request = (
        f"POST /v2/models/reconstruct_mean/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream"
        f"\r\nInference-Header-Content-Length: {len(header)}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body

    async def make():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)

        async def send() -> None:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head[:200]
            length = int(re.search(rb"(?im)^content-length: (\d+)", head).group(1))
            await reader.readexactly(length)

        return send

    return make


async def measure(http_port: int, grpc_port: int, concurrency: list[int], seconds: float, pid: int) -> list[tuple]:
    """Warm both up, then alternate the protocols at each concurrency."""
    image = np.random.default_rng(0).random(784).astype(np.float32)
    clients = {
        "HTTP, OIP binary tensors": http_client(http_port, image),
        "gRPC, raw tensor contents": grpc_client(grpc_port, image),
    }
    for make in clients.values():
        await drive(make, 8, 1.0, pid)
    rows = []
    for level in concurrency:
        for name, make in clients.items():
            rows.append((name, level, await drive(make, level, seconds, pid)))
    return rows


def main() -> None:
    """Export a 784-400-20 model, serve it, measure, print the table for docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()
    import uvloop

    with tempfile.TemporaryDirectory() as tmp:
        _, onnx_dir = build_export(Path(tmp), None)
        process, http_port, grpc_port = start_server(Path(tmp), onnx_dir, grpc=True)
        try:
            rows = uvloop.run(measure(http_port, grpc_port, args.concurrency, args.seconds, process.pid))
        finally:
            process.terminate()
            process.wait(timeout=30)
    print(
        f"vaeops serve (1 worker), 784-400-20, single-image mean reconstruction, one Python asyncio client, "
        f"{args.seconds:g} s per row\n"
    )
    print(table(rows))


def table(rows: list[tuple]) -> str:
    """The measured rows as the Markdown table of docs/benchmarks.md, each protocol's rate against HTTP's."""
    lines = [
        "| protocol | concurrency | p50 (ms) | p99 (ms) | requests/s | vs HTTP | server CPU / request (us) "
        "| client CPU / request (us) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    http = {level: r["rps"] for name, level, r in rows if name.startswith("HTTP")}
    for name, level, r in rows:
        lines.append(
            f"| {name} | {level} | {r['p50']:.2f} | {r['p99']:.2f} | {r['rps']:,.0f} | {r['rps'] / http[level]:.2f} "
            f"| {r['server_us']:.0f} | {r['client_us']:.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
