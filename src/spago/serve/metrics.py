"""Prometheus metrics of one app (its own registry, so several apps in one process do not mix): requests by
endpoint, method and status; latency histogram by endpoint; rows per model call; rows waiting."""
from __future__ import annotations

from typing import Callable, Iterable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics"]

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, paths: Iterable[str]) -> None:
        self.paths = set(paths)  # other paths are counted as "other", so a scan cannot grow the label set
        self.registry = CollectorRegistry()
        self.requests = Counter("spago_requests", "HTTP requests answered", ["endpoint", "method", "status"],
                                registry=self.registry)
        self.latency = Histogram("spago_request_duration_seconds", "Time from request to answer", ["endpoint"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("spago_batch_size", "Rows (encodings) run by one model call",
                                    buckets=BATCH_BUCKETS, registry=self.registry)
        self.queued = Gauge("spago_queued_rows", "Rows waiting for a model call", registry=self.registry)

    def watch_queue(self, rows: Callable[[], int]) -> None:
        self.queued.set_function(rows)

    def record(self, path: str, method: str, status: int, seconds: float) -> None:
        endpoint = path if path in self.paths else "other"
        self.requests.labels(endpoint, method, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
