"""The data plane's model threads: model work runs off the event loop, serve.concurrent_runs calls at once, in order."""

from __future__ import annotations

import asyncio
import gc
import threading
import time

import pytest
from fastapi.testclient import TestClient

from onnx_helpers import IMAGE_SHAPE
from vaeops.core.params import ServeParams
from vaeops.serving.dataplane import DataPlane
from vaeops.serving.serve import create_app


def offload_many(plane: DataPlane, calls: int, seconds: float) -> tuple[list[int], int, set[str], list[int], int]:
    """Offload `calls` sleeping model calls at once while the event loop ticks every 5 ms: (results, the most calls
    running at once, their thread names, the order they started in, loop ticks during the calls)."""
    lock, running, peak, names, started = threading.Lock(), [0], [0], set(), []

    def work(index: int) -> int:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            names.add(threading.current_thread().name)
            started.append(index)
        time.sleep(seconds)
        with lock:
            running[0] -= 1
        return index

    async def main() -> tuple[list[int], int]:
        ticks, done = [0], asyncio.Event()

        async def tick() -> None:
            while not done.is_set():
                await asyncio.sleep(0.005)
                ticks[0] += 1

        ticker = asyncio.create_task(tick())
        results = await asyncio.gather(*(plane.offload(work, i) for i in range(calls)))
        done.set()
        await ticker
        return list(results), ticks[0]

    results, ticks = asyncio.run(main())
    return results, peak[0], names, started, ticks


@pytest.mark.parametrize("runs", [1, 3])
def test_model_work_runs_on_its_own_threads_concurrent_runs_at_once(serve_project, runs):
    _, params, _, _ = serve_project
    plane = DataPlane(ServeParams(model_dir=params.export.out_dir, concurrent_runs=runs))
    try:
        results, peak, names, started, ticks = offload_many(plane, calls=6, seconds=0.05)
    finally:
        plane.close()
    assert results == list(range(6))
    assert peak == runs  # never more at once than asked, and as many as asked
    assert names and all(name.startswith("vaeops-run") for name in names) and len(names) <= runs
    if runs == 1:
        assert started == list(range(6))  # queued calls run in arrival order
    # the loop kept running while the model threads worked (6 x 50 ms / runs of it; a tick every 5 ms when idle)
    assert ticks >= 0.25 * (6 * 0.05 / runs) / 0.005


def test_the_server_freezes_its_startup_objects_out_of_the_collector(serve_project):
    _, params, _, _ = serve_project
    app = create_app(ServeParams(model_dir=params.export.out_dir, reload_seconds=0))
    gc.unfreeze()
    try:
        with TestClient(app) as client:
            assert gc.get_freeze_count() > 10_000  # the app, the model, the libraries: no full collection walks them
            answer = client.post("/reconstruct", json={"images": [[0.5] * IMAGE_SHAPE[1]] * IMAGE_SHAPE[0]})
            assert answer.status_code == 200 and answer.json()["shape"] == list(IMAGE_SHAPE)
    finally:
        gc.unfreeze()
