"""Starting `vaeops serve`: the listening socket, worker processes, and the settings each worker builds its app from.

The socket is bound here, before uvicorn starts, so a taken address is a clear error (exit code 2) naming it, the
address printed is the one really bound (port 0 picks a free one), and several workers share the one socket.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import shutil
import socket
import tempfile
from typing import Any

from vaeops.core.errors import ParamsError, VaeopsError

SETTINGS_ENV = "VAEOPS_SERVE_SETTINGS"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class BindError(VaeopsError):
    """The service cannot listen on the address it was given."""


def configure_logging() -> None:
    """Show the service's own log lines (model switches, refused reloads) on stderr, once per process."""
    logger = logging.getLogger("vaeops.serve")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s vaeops serve: %(message)s", "%Y-%m-%dT%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port), IPv4 or IPv6 as the host needs; BindError names a taken address."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        raise BindError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise BindError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}"
            + (" (another process holds it; choose another port: -S serve.port=N)" if exc.errno == 98 else "")
        ) from None
    sock.set_inheritable(True)
    return sock


def worker_threads(threads: int, workers: int) -> int:
    """onnxruntime intra-op threads per worker: `threads` when set, else the cores divided among the workers."""
    return threads if threads > 0 else max(1, (os.cpu_count() or 1) // workers)


def export_settings(settings: dict[str, Any]) -> None:
    """Hand the app's settings to the worker processes (they start fresh and build their own app)."""
    os.environ[SETTINGS_ENV] = json.dumps(settings)


def imported_settings() -> dict[str, Any]:
    """The settings a worker process was started with."""
    try:
        return json.loads(os.environ[SETTINGS_ENV])
    except (KeyError, json.JSONDecodeError):
        raise ParamsError(f"{SETTINGS_ENV} is missing or not JSON: start workers through `vaeops serve`") from None


def serve_forever(app: Any, sock: socket.socket, workers: int) -> None:
    """Run uvicorn on the bound socket: in this process, or in `workers` processes that build their own app."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    if workers == 1:
        config = uvicorn.Config(app, log_level="warning", access_log=False)
        uvicorn.Server(config).run(sockets=[sock])
        return
    metrics_dir = tempfile.mkdtemp(prefix="vaeops-metrics-")
    os.environ[MULTIPROC_ENV] = metrics_dir  # every worker's samples, summed by /metrics
    try:
        config = uvicorn.Config(
            "vaeops.serving.serve:app_from_settings",
            factory=True,
            workers=workers,
            log_level="warning",
            access_log=False,
        )
        # uvicorn 0.30-0.4x took the worker's target; later releases build it from the config.
        target = (
            {"target": uvicorn.Server(config).run} if "target" in inspect.signature(Multiprocess).parameters else {}
        )
        Multiprocess(config, sockets=[sock], **target).run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
