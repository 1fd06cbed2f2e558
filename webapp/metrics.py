"""Prometheus metrics: load, latency and saturation of answers, retrieval and ingestion.

Labels carry model names and backends only - never a user, a collection, a question or a
document name. Served at /metrics behind sign-in (an API token works), and without sign-in on
``DOCCHAT_METRICS_PORT`` when set (the cluster opens that port to the monitoring namespace only).
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)
TOKEN_BUCKETS = (0.005, 0.01, 0.02, 0.04, 0.08, 0.15, 0.3, 0.6, 1.2)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        labels = ["model", "backend"]
        self.started = Counter("docchat_answers_started", "Answers that started generating", labels, registry=r)
        self.finished = Counter(
            "docchat_answers_finished", "Answers that ended normally", labels + ["reason"], registry=r
        )
        self.failed = Counter("docchat_answers_failed", "Answers that ended with an error", labels, registry=r)
        self.refused = Counter("docchat_answers_refused", "Questions refused before generating", ["reason"], registry=r)
        self.not_found = Counter(
            "docchat_answers_not_in_documents",
            "Grounded questions the documents did not answer (the model was not asked)",
            registry=r,
        )
        self.ttft = Histogram(
            "docchat_time_to_first_token_seconds",
            "Time to the first token of an answer",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tpot = Histogram(
            "docchat_time_per_output_token_seconds",
            "Mean time per token after the first",
            labels,
            buckets=TOKEN_BUCKETS,
            registry=r,
        )
        self.tokens = Counter("docchat_generated_tokens", "Tokens generated", labels, registry=r)
        self.retrieval = Histogram(
            "docchat_retrieval_seconds", "Search time of a grounded question", buckets=LATENCY_BUCKETS, registry=r
        )
        self.documents = Counter("docchat_documents_indexed", "Documents indexed, by outcome", ["outcome"], registry=r)
        self.pages = Counter("docchat_pages_indexed", "Pages indexed", registry=r)
        self.ocr_pages = Counter("docchat_ocr_pages", "Scanned pages read by OCR", registry=r)
        self.in_flight = Gauge("docchat_answers_in_flight", "Answers generating now", registry=r)
        self.queued = Gauge("docchat_answers_queued", "Answers waiting for a slot", registry=r)
        self.slots = Gauge("docchat_answer_slots", "Answers that may generate at once", registry=r)

    def watch_admission(self, admission) -> None:
        """In-flight and queued answers are read from admission control at scrape time."""
        self.in_flight.set_function(lambda: admission.stats().active)
        self.queued.set_function(lambda: admission.stats().waiting)
        self.slots.set_function(lambda: admission.slots)

    def watch_engines(self, catalog) -> None:
        """KV-cache use and scheduled requests of each loaded local model, as its engine process
        last reported them (about once a second while generating)."""
        self.registry.register(_EngineCollector(catalog))

    def answered(self, model: str, stats: Any, backend: str = "openvino") -> None:
        """One answer ended normally: its latency figures and tokens."""
        labels = (model or "?", backend)
        self.finished.labels(*labels, stats.finish_reason or "stop").inc()
        if stats.ttft_s is not None:
            self.ttft.labels(*labels).observe(stats.ttft_s)
        tokens = stats.completion_tokens or 0
        self.tokens.labels(*labels).inc(tokens)
        if tokens > 1 and stats.total_s and stats.ttft_s is not None:
            self.tpot.labels(*labels).observe(max(0.0, stats.total_s - stats.ttft_s) / (tokens - 1))

    def serve(self, port: int, host: str = "0.0.0.0") -> None:
        start_http_server(port, addr=host, registry=self.registry)
        log.info("metrics on http://%s:%d/metrics", host, port)


class _EngineCollector:
    """Reads ``catalog.engine_stats()`` at scrape time (a custom collector: the set of loaded
    models changes, and a gauge of an unloaded model must disappear, not stay at its last value)."""

    def __init__(self, catalog):
        self.catalog = catalog

    def collect(self):
        usage = GaugeMetricFamily(
            "docchat_engine_kv_cache_usage_ratio",
            "Share of the KV cache in use (0-1), per loaded local model",
            labels=["model"],
        )
        size = GaugeMetricFamily(
            "docchat_engine_kv_cache_bytes", "KV-cache size, per loaded local model", labels=["model"]
        )
        running = GaugeMetricFamily(
            "docchat_engine_requests", "Requests in the engine, per loaded local model", labels=["model", "state"]
        )
        try:
            engines = self.catalog.engine_stats()
        except Exception:  # a scrape must never fail because a model is loading or closing
            log.exception("reading engine statistics failed")
            engines = {}
        for model, stats in engines.items():
            if not stats:
                continue
            usage.add_metric([model], stats.get("cache_usage", 0.0))
            size.add_metric([model], stats.get("cache_bytes", 0))
            running.add_metric([model, "running"], stats.get("requests", 0))
            running.add_metric([model, "scheduled"], stats.get("scheduled_requests", 0))
        yield usage
        yield size
        yield running
