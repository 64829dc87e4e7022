"""bench/gpu_check.py runs its every code path on the CPU at tiny sizes, so the GPU check cannot rot between GPU
runs."""

import json
import subprocess
import sys

import pytest

from helpers import REPO


@pytest.mark.slow
def test_the_gpu_check_runs_on_the_cpu_and_prints_one_table(tmp_path):
    out = tmp_path / "rows.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu_check.py"), "--tiny", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,  # dvclive looks for a DVC repo from the working folder: not the checkout's
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {row["check"].split(",")[0]: row for row in json.loads(out.read_text())}
    assert set(rows) == {
        "train 784-400-20",
        "NLL",
        "ONNX reconstruct_mean on CPUExecutionProvider",
        "train IWAE paper model (784-200-200-50 tanh",
        "DDP",
    }
    assert "images/s" in rows["train 784-400-20"]["result"] and "val -ELBO" in rows["train 784-400-20"]["detail"]
    assert "nats" in rows["NLL"]["detail"]
    error = float(rows["ONNX reconstruct_mean on CPUExecutionProvider"]["detail"].split()[4])
    assert error < 1e-4  # the exported graph computes what the PyTorch model computes
    assert "| check | result | detail |" in done.stdout and "no CUDA device" in done.stdout
