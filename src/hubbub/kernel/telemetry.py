"""Logs, metrics and trace context, instrumented per batch (never per event).

Logs are JSON lines from structlog, each carrying the correlation id (`trace`, a W3C
traceparent) of the batch or request that caused it. Metrics are Prometheus series in
the process registry, served at /metrics.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Final

import structlog
from prometheus_client import Counter, Gauge, Histogram

INGEST_EVENTS: Final = Counter(
    "hubbub_ingest_events",
    "Source events by outcome (accepted, skipped, rejected, duplicate).",
    ["source", "outcome"],
)
INGEST_BATCH_SIZE: Final = Histogram(
    "hubbub_ingest_batch_size",
    "Source events per processed batch.",
    ["source"],
    buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10000, 20000),
)
INGEST_BATCH_SECONDS: Final = Histogram(
    "hubbub_ingest_batch_seconds",
    "Time to decode, map and append one batch.",
    ["source"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
INGEST_LAG_SECONDS: Final = Gauge(
    "hubbub_ingest_lag_seconds",
    "Now minus the source time of the newest event in the last batch.",
    ["source"],
)
INGEST_QUEUE_DEPTH: Final = Gauge(
    "hubbub_ingest_queue_batches", "Batches submitted and not yet through the pipeline.", ["source"]
)
INGEST_FACETS_DROPPED: Final = Counter(
    "hubbub_ingest_facets_dropped",
    "Facets dropped from accepted posts for a bad shape or byte range.",
    ["source"],
)
SOURCE_RECONNECTS: Final = Counter(
    "hubbub_source_reconnects", "Times a streaming connector reconnected.", ["source"]
)


def new_traceparent() -> str:
    """A fresh W3C traceparent, used as the correlation id of a batch."""
    return f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"


def child_traceparent(parent: str | None) -> str:
    """Continue the caller's trace when it sent a valid traceparent, else start one."""
    parts = (parent or "").split("-")
    if len(parts) == 4 and len(parts[1]) == 32 and len(parts[2]) == 16:
        return f"00-{parts[1]}-{os.urandom(8).hex()}-{parts[3]}"
    return new_traceparent()


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    """JSON lines on stderr (or a console renderer for people), at the given level."""
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        # Looked up at each call, so a replaced sys.stderr (a test runner's) is honoured.
        logger_factory=lambda *_: structlog.PrintLogger(sys.stderr),
        cache_logger_on_first_use=False,
    )
