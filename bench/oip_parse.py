"""Parsing one Open Inference Protocol request in-process: vaeops.serving.oip against KServe's InferRequest.

The same binary-tensor request (one 784-pixel image, the body bench/http_speed.py sends) is parsed into a numpy
array by `vaeops.serving.oip.parse_request` here, and by `kserve.protocol.infer_type.InferRequest.from_bytes` in
the interpreter given by --kserve-python (a separate environment: `python -m venv /tmp/kvenv &&
/tmp/kvenv/bin/pip install kserve`), since kserve's pins do not fit this project's environment.

    .venv/bin/python bench/oip_parse.py [--kserve-python /tmp/kvenv/bin/python] [--repeats 20000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import timeit

import numpy as np

TIMER = """
import json, timeit, numpy as np
body, length, repeats = {body!r}, {length}, {repeats}
from kserve.protocol.infer_type import InferRequest
def parse():
    return InferRequest.from_bytes(body, length, "reconstruct_mean").inputs[0].as_numpy()
assert parse().shape == (1, 784)
best = min(timeit.repeat(parse, number=repeats, repeat=5)) / repeats
print(json.dumps(best))
"""


def request_body() -> tuple[bytes, int]:
    """One single-image binary request and its JSON header's length."""
    image = np.random.default_rng(0).random((1, 784)).astype("<f4")
    header = json.dumps(
        {
            "inputs": [
                {"name": "x", "shape": [1, 784], "datatype": "FP32", "parameters": {"binary_data_size": image.nbytes}}
            ],
            "outputs": [{"name": "x_hat", "parameters": {"binary_data": True}}],
        }
    ).encode()
    return header + image.tobytes(), len(header)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kserve-python", help="a Python interpreter with kserve installed")
    parser.add_argument("--repeats", type=int, default=20000)
    args = parser.parse_args()
    from vaeops.serving.oip import parse_request

    body, length = request_body()

    def ours() -> np.ndarray:
        return parse_request(body, str(length))[1]["x"]

    assert ours().shape == (1, 784)
    results = {
        "vaeops.serving.oip.parse_request": min(timeit.repeat(ours, number=args.repeats, repeat=5)) / args.repeats
    }
    if args.kserve_python:
        code = TIMER.format(body=body, length=length, repeats=args.repeats)
        out = subprocess.run([args.kserve_python, "-c", code], capture_output=True, text=True, check=True).stdout
        results["kserve InferRequest.from_bytes"] = json.loads(out.strip().splitlines()[-1])
    print(f"one binary OIP request, 1 x 784 FP32 ({len(body):,} bytes), best of 5 x {args.repeats} parses\n")
    print("| parser | us per request | vs vaeops |")
    print("|---|---:|---:|")
    base = results["vaeops.serving.oip.parse_request"]
    for name, seconds in results.items():
        print(f"| {name} | {seconds * 1e6:.1f} | {seconds / base:.2f}x |")


if __name__ == "__main__":
    sys.exit(main())
