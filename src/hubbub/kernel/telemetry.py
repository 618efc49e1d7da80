"""Logs, metrics and trace context, instrumented per batch (never per event).

Logs are JSON lines from structlog, each carrying the correlation id (`trace`, a W3C
traceparent) of the batch or request that caused it. Metrics are Prometheus series in
the process registry, served at /metrics.
"""

from __future__ import annotations

import logging
import os
import random
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import structlog
from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hubbub.kernel import tracing

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


class DataDirUsage(Collector):
    """The file system of the process's data dir: its free and total bytes, read at each
    scrape (a role that cannot write there fails, so the operator must be told before).

    Nothing is exported until `watch` names the dir; a dir that cannot be read (removed,
    unmounted) exports nothing rather than a stale figure.
    """

    def __init__(self) -> None:
        self._path: Path | None = None

    def watch(self, path: Path) -> None:
        """Measure `path` from now on (a process has one data dir: the last named)."""
        self._path = path.resolve()

    def describe(self) -> Iterator[Metric]:
        yield from self._families(None)

    def collect(self) -> Iterator[Metric]:
        if self._path is None:
            return
        try:
            usage = shutil.disk_usage(self._path)
        except OSError:
            return
        yield from self._families((str(self._path), usage.free, usage.total))

    @staticmethod
    def _families(measured: tuple[str, int, int] | None) -> Iterator[Metric]:
        free = GaugeMetricFamily(
            "hubbub_data_dir_free_bytes",
            "Bytes free for the process (not root) on the data dir's file system.",
            labels=["path"],
        )
        size = GaugeMetricFamily(
            "hubbub_data_dir_size_bytes", "Size of the data dir's file system.", labels=["path"]
        )
        if measured is not None:
            path, free_bytes, size_bytes = measured
            free.add_metric([path], free_bytes)
            size.add_metric([path], size_bytes)
        yield free
        yield size


DATA_DIR: Final = DataDirUsage()
REGISTRY.register(DATA_DIR)


HTTP_REQUESTS: Final = Counter(
    "hubbub_http_requests",
    "HTTP requests answered, by service, route, method and status.",
    ["service", "route", "method", "status"],
)
HTTP_SECONDS: Final = Histogram(
    "hubbub_http_request_seconds",
    "Time from a request's arrival to the end of its answer.",
    ["service", "route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


# Trace and span ids need to be unique, not secret: a PRNG seeded from the OS once, not
# a system call for every request.
_random = random.Random(os.urandom(32))


def _span_id() -> str:
    return f"{_random.getrandbits(64) or 1:016x}"


def new_traceparent() -> str:
    """A fresh W3C traceparent, used as the correlation id of a batch."""
    return f"00-{_random.getrandbits(128):032x}-{_span_id()}-01"


def child_traceparent(parent: str | None) -> str:
    """Continue the caller's trace when it sent a valid traceparent, else start one."""
    parts = (parent or "").split("-")
    if len(parts) == 4 and len(parts[1]) == 32 and len(parts[2]) == 16:
        return f"00-{parts[1]}-{_span_id()}-{parts[3]}"
    return new_traceparent()


def configure_logging(level: str = "info", fmt: str | None = "json") -> None:
    """JSON lines on stderr, or lines for people (`console`), at the given level; with no
    format, for people on a terminal and JSON elsewhere (a file, a log collector)."""
    fmt = fmt or ("console" if sys.stderr.isatty() else "json")
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_correlation,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_credentials,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        # Looked up at each call, so a replaced sys.stderr (a test runner's) is honoured.
        logger_factory=lambda *_: structlog.PrintLogger(sys.stderr),
        cache_logger_on_first_use=False,
    )


METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")
_current: ContextVar[Correlation | None] = ContextVar("hubbub_correlation", default=None)


@dataclass(frozen=True)
class Correlation:
    """What ties a request to every log line and event it causes.

    `request_id` is the caller's `X-Request-ID` when it sent a sensible one, else the
    trace id of `traceparent` (the caller's trace, continued, or a new one).
    """

    request_id: str
    traceparent: str

    @property
    def trace(self) -> str:
        """The envelope `trace` of events the request causes: its traceparent, or the
        caller's own request id when it chose one (so a search for it finds them)."""
        if self.request_id == self.traceparent.split("-")[1]:
            return self.traceparent
        return self.request_id


def correlate(
    request_id: str | None, traceparent: str | None, *, child: bool = True
) -> Correlation:
    """The correlation of a request from its headers (continuing the caller's trace in
    a span of its own, unless `child` is false: `traceparent` is this span's already);
    a bad request id is replaced by the trace id."""
    parent = child_traceparent(traceparent) if child else traceparent or new_traceparent()
    if request_id is None or not _REQUEST_ID.match(request_id):
        request_id = parent.split("-")[1]
    return Correlation(request_id, parent)


def add_correlation(
    logger: object, method: str, event: structlog.types.EventDict
) -> structlog.types.EventDict:
    """A structlog processor: the request's correlation on every line logged while it
    is served (looked up when a line is written, so requests that log nothing pay
    nothing for it)."""
    correlation = _current.get()
    if correlation is not None:
        event.setdefault("request_id", correlation.request_id)
        event.setdefault("trace", correlation.traceparent)
    return event


_CREDENTIALS: Final = re.compile(
    # A URL's password runs to the last @ of its authority (the @ after which no / ? #
    # or @ comes before the host ends): a password holding / or @ unescaped is still
    # hidden whole; one holding ? or # is taken for a query. Better hidden than shown:
    # `http://host:80/path@x` loses "80/path". A keyword's password may be quoted.
    r"(?P<keep>[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s]*(?:@[^:/?#@\s]*)*:)[^?#\s]+?@"
    r"(?=[^@/?#\s]*(?:[/?#\s]|$))"
    r"|(?P<word>password\s*=\s*)(?:'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|\S+)",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """`text` with the passwords of URLs (`scheme://user:secret@host`) and of connection
    strings (`password=secret`) replaced by `***`."""
    return _CREDENTIALS.sub(lambda m: f"{m['keep']}***@" if m["keep"] else f"{m['word']}***", text)


def redact_credentials(
    logger: object, method: str, event: structlog.types.EventDict
) -> structlog.types.EventDict:
    """A structlog processor: no database, Redis or NATS password reaches a log line,
    whatever message or error carried the URL."""
    for name, value in event.items():
        if isinstance(value, str) and ("@" in value or "password" in value.lower()):
            event[name] = redact(value)
    return event


def current_trace() -> str:
    """The envelope trace of events caused now: the request's, or a new trace."""
    correlation = _current.get()
    return correlation.trace if correlation is not None else new_traceparent()


def header(scope: Scope, name: bytes) -> str | None:
    """One request header (the first of that name), decoded as Latin-1 as HTTP says."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def route_of(scope: Scope) -> str:
    """The route template a request matched (bounded, for metric labels)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    found = scope.get("hubbub.route")
    return found if isinstance(found, str) else "unmatched"


class Observed:
    """ASGI middleware of every service: the request's correlation (bound to each log
    line, returned in `X-Request-ID`), and its count and duration per route.

    `route` names the route of a request when the app does not record one in its scope
    (FastAPI does); `skip` lists paths not measured (the metrics scrape itself).
    """

    def __init__(
        self,
        app: ASGIApp,
        service: str,
        route: Callable[[Scope], str] = route_of,
        skip: frozenset[str] = frozenset({"/metrics"}),
    ) -> None:
        self.app, self.service, self.route, self.skip = app, service, route, skip
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id, parent = header(scope, b"x-request-id"), header(scope, b"traceparent")
        if not tracing.enabled():
            await self._observe(scope, receive, send, correlate(request_id, parent), started)
            return
        with tracing.server_span(f"{scope['method']} {self.service}", parent) as span:
            here = correlate(request_id, tracing.traceparent_of(span), child=False)
            await self._observe(scope, receive, send, here, started)
            span.update_name(f"{scope['method']} {self.route(scope)}")

    async def _observe(
        self, scope: Scope, receive: Receive, send: Send, correlation: Correlation, started: float
    ) -> None:
        scope["hubbub.correlation"] = correlation
        status = 500
        extra = (b"x-request-id", correlation.request_id.encode())

        async def answer(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), extra]
            await send(message)

        token = _current.set(correlation)  # each log line takes it: `add_correlation`
        try:
            await self.app(scope, receive, answer)
        finally:
            _current.reset(token)
            if scope["path"] not in self.skip:
                method = scope["method"] if scope["method"] in METHODS else "OTHER"
                count, duration = self._series(self.route(scope), method, status)
                count.inc()
                duration.observe(time.perf_counter() - started)

    def _series(self, route: str, method: str, status: int) -> tuple[Counter, Histogram]:
        """The metric children of a route, looked up once (`labels` costs microseconds)."""
        key = (route, method, status)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = (
                HTTP_REQUESTS.labels(self.service, route, method, str(status)),
                HTTP_SECONDS.labels(self.service, route),
            )
        return found
