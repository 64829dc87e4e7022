"""The retraining flow on MNIST with `orchestrate.runner: local` and `dask`, side by side on this machine.

Each runner gets its own fresh clone of the committed checkout (so both start with no champion and no cache) and one
run of `flows/retrain.py` with the README's MNIST switch; the wall time of the flow and of each stage come from the
run's summary. Usage: `python bench/scale_out.py --mnist ../shared/data/mnist [--epochs 5] [--workers 2]`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def mnist_overrides(mnist: Path, epochs: int) -> list[str]:
    """The README's MNIST switch: 784-400-20, dynamic binarization in training, static in evaluation."""
    values = {
        "data.dataset": "mnist",
        "data.source_dir": str(mnist.resolve()),
        "model.hidden": "[400]",
        "model.latent_dim": 20,
        "train.epochs": epochs,
        "train.binarize": "dynamic",
        "evaluate.binarize": "static",
        "promote.accept_contract_change": "true",
    }
    return [arg for key, value in values.items() for arg in ("-S", f"{key}={value}")]


def stage_seconds(summary: str) -> dict[str, float]:
    """Each step's wall time from the run summary's `stages:` block."""
    found = {}
    for line in summary.splitlines():
        match = re.match(r"^  (\(parts on Dask\)|\S+)\s+.*?\(?([\d.]+) s", line)
        if match:
            found[match.group(1)] = float(match.group(2))
    return found


def run_flow(runner: str, workdir: Path, overrides: list[str], workers: int) -> dict:
    """Clone, run the flow once with this runner, return its wall time and stage times."""
    clone = workdir / runner
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    env = {**os.environ, "PYTHONPATH": str(clone / "src"), "PREFECT_HOME": str(clone / ".prefect")}
    command = [sys.executable, "flows/retrain.py", *overrides, "-S", f"orchestrate.runner={runner}"]
    command += ["-S", f"orchestrate.workers={workers}"]
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=clone, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{runner}: the flow failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    seconds = stage_seconds(proc.stdout)
    train = sum(value for name, value in seconds.items() if name.startswith("train@")) + seconds.get(
        "(parts on Dask)", 0
    )
    checkpoints = {
        str(path.relative_to(clone)): path.read_bytes()
        for path in sorted((clone / "models").glob("*/replicates/seed-*/best.pt"))
    }
    # what follows from the checkpoints: the evaluation's numbers, the promoted model, the whole lock
    checkpoints.update({name: (clone / name).read_bytes() for name in ("reports/metrics.json", "dvc.lock")})
    return {
        "runner": runner,
        "flow_s": round(wall, 1),
        "training_s": round(train, 1),
        "stages": seconds,
        "checkpoints": checkpoints,
    }


def main() -> None:
    """Run both runners one after the other and print the table for docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=Path, default=REPO.parent / "shared" / "data" / "mnist")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args()
    if not args.mnist.is_dir():
        raise SystemExit(f"no MNIST at {args.mnist}: pass --mnist DIR (the four IDX files)")
    overrides = mnist_overrides(args.mnist, args.epochs)
    with tempfile.TemporaryDirectory(prefix="vaeops-scale-out-") as tmp:
        results = [run_flow(runner, Path(tmp), overrides, args.workers) for runner in ("local", "dask")]
    local, dask = results
    same = local["checkpoints"] == dask["checkpoints"]
    print(
        f"MNIST, {args.epochs} epochs, {len(local['checkpoints'])} trainings; dask: {args.workers} workers x 1 thread"
    )
    print("| runner | training stage (s) | whole flow (s) |")
    print("|---|---|---|")
    for row in results:
        print(f"| {row['runner']} | {row['training_s']:.1f} | {row['flow_s']:.1f} |")
    print(
        f"speed-up, dask over local: training {local['training_s'] / dask['training_s']:.2f}x, "
        f"flow {local['flow_s'] / dask['flow_s']:.2f}x; checkpoints byte-identical: {same}"
    )
    if args.out:
        for row in results:
            row["checkpoints"] = len(row["checkpoints"])
        args.out.write_text(json.dumps({"results": results, "byte_identical": same}, indent=2))


if __name__ == "__main__":
    main()
