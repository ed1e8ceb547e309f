"""Turn timings → Prometheus metrics, taken beside the engine (from its per-turn records), not inside the stages.

Exposed by the server at ``GET /metrics``; every name starts with ``oviya_``. Besides the turn metrics: the process's
memory, CPU and file descriptors (``oviya_process_*``), its threads and asyncio tasks (leak checks in the load test).
"""

from __future__ import annotations

import asyncio
import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest

from oviya.events import TurnRecord

# Latency buckets in ms: from a fast end-of-turn decision to a slow first reply.
MS_BUCKETS = (25, 50, 100, 150, 200, 300, 400, 500, 600, 800, 1000, 1500, 2000, 3000, 5000, 10000)


class Metrics:
    """The Prometheus collectors of one server.

    Args:
        registry: where to register (a fresh one by default, so several apps can live in one process).
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.stage_ms = Histogram("oviya_stage_latency_ms", "Per-turn stage latency (ms), names as in docs/architecture.md",
                                  ["stage"], buckets=MS_BUCKETS, registry=self.registry)
        self.turns = Counter("oviya_turns_total", "Finished turns", ["source", "outcome"], registry=self.registry)
        self.sessions = Gauge("oviya_sessions_active", "Open WebRTC/websocket sessions", registry=self.registry)
        self.errors = Counter("oviya_stage_errors_total", "Stage failures inside turns", ["stage"],
                              registry=self.registry)
        ProcessCollector(namespace="oviya", registry=self.registry)
        Gauge("oviya_threads", "Live Python threads", registry=self.registry).set_function(threading.active_count)
        Gauge("oviya_asyncio_tasks", "Pending asyncio tasks on the server's event loop (at scrape time)",
              registry=self.registry).set_function(_running_tasks)

    def observe(self, record: TurnRecord) -> None:
        """Account one finished turn."""
        self.turns.labels(record.source, record.outcome or "unknown").inc()
        for name, value in record.timings().items():
            if value is not None and value >= 0:
                self.stage_ms.labels(name.removesuffix("_ms")).observe(value)
        for err in record.errors:
            self.errors.labels(err.split(":", 1)[0]).inc()

    def export(self) -> bytes:
        """The text exposition format. Call it on the event loop, so the task count is that loop's."""
        return generate_latest(self.registry)


def _running_tasks() -> int:
    try:
        return len(asyncio.all_tasks())
    except RuntimeError:  # no loop in this thread
        return 0
