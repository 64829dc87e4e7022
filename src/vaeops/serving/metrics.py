"""Prometheus metrics of the HTTP service (prometheus-client): requests, latency, in-flight, inference time, model.

With several worker processes (`serve.workers`), every process writes its samples to PROMETHEUS_MULTIPROC_DIR and
`/metrics` adds them up (prometheus-client's multiprocess mode), so a scrape sees the whole server, not one worker.
"""

from __future__ import annotations

import os
import time
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

# Latency buckets from 0.25 ms: single-image requests take about a millisecond end to end.
REQUEST_BUCKETS = (0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
INFERENCE_BUCKETS = (0.00002, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0)


class ServiceMetrics:
    """The service's metrics in their own registry (several apps in one process, as in tests, do not collide)."""

    def __init__(self, model_version: str):
        self.multiprocess = "PROMETHEUS_MULTIPROC_DIR" in os.environ
        self.registry = CollectorRegistry()
        # In multiprocess mode samples go to files, not to a registry; /metrics collects them from there.
        target = None if self.multiprocess else self.registry
        self.requests = Counter(
            "vaeops_http_requests_total",
            "HTTP requests by endpoint, method and status",
            ["endpoint", "method", "status"],
            registry=target,
        )
        self.latency = Histogram(
            "vaeops_http_request_duration_seconds",
            "Time from request to response, by endpoint",
            ["endpoint"],
            buckets=REQUEST_BUCKETS,
            registry=target,
        )
        self.in_flight = Gauge(
            "vaeops_http_requests_in_flight", "Requests being handled now", registry=target, multiprocess_mode="livesum"
        )
        self.inference = Histogram(
            "vaeops_inference_duration_seconds",
            "onnxruntime time per graph run, by graph",
            ["graph"],
            buckets=INFERENCE_BUCKETS,
            registry=target,
        )
        self.model = Gauge(
            "vaeops_model_info",
            "The model being served (value 1), by model version",
            ["model_version"],
            registry=target,
            multiprocess_mode="max",
        )
        self.model.labels(model_version).set(1)
        self.graph_timers: dict[str, Any] = {}
        self.oip_children: dict[tuple[str, str], tuple[Any, Any]] = {}
        # Open Inference Protocol requests per graph and outcome, and their cumulative time: Triton's statistics
        # extension (GET /v2/models/stats) reads these, /metrics shows them
        self.oip_requests = Counter(
            "vaeops_oip_requests_total",
            "OIP inference requests by graph and outcome",
            ["graph", "outcome"],
            registry=target,
        )
        self.oip_seconds = Counter(
            "vaeops_oip_request_seconds_total",
            "Cumulative time of OIP inference requests by graph and outcome",
            ["graph", "outcome"],
            registry=target,
        )

    def serving(self, model_version: str) -> None:
        """Point vaeops_model_info at a newly loaded model."""
        self.model.clear()
        self.model.labels(model_version).set(1)

    def observe_inference(self, graph: str, seconds: float) -> None:
        """Record one onnxruntime run (the inference library's on_run hook)."""
        timer = self.graph_timers.get(graph) or self.graph_timers.setdefault(graph, self.inference.labels(graph))
        timer.observe(seconds)

    def observe_oip(self, graph: str, ok: bool, seconds: float) -> None:
        """Record one OIP inference request of `graph`, answered (ok) or refused."""
        key = (graph, "success" if ok else "fail")
        children = self.oip_children.get(key)  # labels() validates and locks on every call: look each up once
        if children is None:
            children = self.oip_children.setdefault(
                key, (self.oip_requests.labels(*key), self.oip_seconds.labels(*key))
            )
        children[0].inc()
        children[1].inc(seconds)

    def collected(self) -> CollectorRegistry:
        """The registry to read: this one, or every worker's samples summed in multiprocess mode."""
        if not self.multiprocess:
            return self.registry
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry

    def oip_totals(self) -> dict[tuple[str, str], tuple[int, float]]:
        """(graph, outcome) -> (requests, seconds), from the same counters /metrics shows."""
        totals: dict[tuple[str, str], list[float]] = {}
        for family in self.collected().collect():
            if family.name not in ("vaeops_oip_requests", "vaeops_oip_request_seconds"):
                continue
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    key = (sample.labels["graph"], sample.labels["outcome"])
                    slot = 0 if family.name == "vaeops_oip_requests" else 1
                    totals.setdefault(key, [0.0, 0.0])[slot] += sample.value
        return {key: (int(count), seconds) for key, (count, seconds) in totals.items()}

    def triton_statistics(self, graphs: list[str], version: str) -> dict[str, Any]:
        """Triton's inference statistics (GET /v2/models/stats) of `graphs`: request counts and cumulative times of
        the successful and the refused requests (a request counts once, whatever its batch size; there is no queue,
        so the queue and compute breakdowns are zero)."""
        totals, zero = self.oip_totals(), {"count": 0, "ns": 0}

        def stat(graph: str, outcome: str) -> dict[str, int]:
            count, seconds = totals.get((graph, outcome), (0, 0.0))
            return {"count": count, "ns": int(seconds * 1e9)}

        return {
            "model_stats": [
                {
                    "name": graph,
                    "version": version,
                    "last_inference": 0,
                    "inference_count": stat(graph, "success")["count"],
                    "execution_count": stat(graph, "success")["count"],
                    "inference_stats": {
                        "success": stat(graph, "success"),
                        "fail": stat(graph, "fail"),
                        **{k: zero for k in ("queue", "compute_input", "compute_infer", "compute_output")},
                        **{k: zero for k in ("cache_hit", "cache_miss")},
                    },
                    "batch_stats": [],
                }
                for graph in graphs
            ]
        }

    def exposition(self) -> tuple[bytes, str]:
        """The text format of every metric, summed over worker processes in multiprocess mode."""
        return generate_latest(self.collected()), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """ASGI middleware: count and time every HTTP request under its route template (bounded label values)."""

    def __init__(self, app: Any, metrics: ServiceMetrics):
        self.app = app
        self.metrics = metrics
        # Labelled children, looked up once per label set: labels() validates and locks on every call.
        self.counters: dict[tuple[str, str, str], Any] = {}
        self.timers: dict[str, Any] = {}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = 500
        started = time.perf_counter()

        async def send_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.in_flight.dec()
            route = scope.get("route")  # set by the router on the shared scope; absent for unknown paths
            endpoint = getattr(route, "path", "unmatched")
            key = (endpoint, scope["method"], str(status))
            counter = self.counters.get(key) or self.counters.setdefault(key, self.metrics.requests.labels(*key))
            timer = self.timers.get(endpoint) or self.timers.setdefault(endpoint, self.metrics.latency.labels(endpoint))
            counter.inc()
            timer.observe(time.perf_counter() - started)
