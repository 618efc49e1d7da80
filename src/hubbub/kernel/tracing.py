"""OpenTelemetry tracing, across HTTP and the log. Off unless an OTLP endpoint is set.

- A request to any service is a server span, continuing the caller's `traceparent`.
- The gateway's call to a service is a client span; the service's span is its child.
- Events carry the traceparent of the request that caused them (the envelope's
  `trace`), so a log consumer's span for a batch links to the traces of its events:
  from a push to the gateway to the rollups it changed is one path in a trace viewer.

With tracing off (the default), nothing here runs on the request path but one check,
and correlation ids are kept by `hubbub.kernel.telemetry` alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Final

from opentelemetry import context, propagate, trace
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, TraceFlags

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

MAX_LINKS: Final = 32
_state = {"enabled": False}
tracer = trace.get_tracer("hubbub")


def enabled() -> bool:
    return _state["enabled"]


def configure_tracing(
    service: str, endpoint: str | None, exporter: SpanExporter | None = None
) -> None:
    """Send spans of `service` to the OTLP/HTTP collector at `endpoint` (or to
    `exporter`, for tests); with neither, tracing stays off. Once per process."""
    if endpoint is None and exporter is None:
        return
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    processor: SpanProcessor
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces"))
    else:
        processor = SimpleSpanProcessor(exporter)
    provider = TracerProvider(resource=Resource.create({"service.name": f"hubbub-{service}"}))
    provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    _state["enabled"] = True


def traceparent_of(span: Span) -> str:
    """The W3C traceparent naming `span` as the parent."""
    found = span.get_span_context()
    return f"00-{found.trace_id:032x}-{found.span_id:016x}-{int(found.trace_flags):02x}"


@contextmanager
def server_span(name: str, traceparent: str | None) -> Iterator[Span]:
    """A server span continuing the caller's trace, current while the block runs."""
    parent = propagate.extract({"traceparent": traceparent} if traceparent else {})
    with tracer.start_as_current_span(name, context=parent, kind=SpanKind.SERVER) as span:
        yield span


@contextmanager
def client_span(name: str) -> Iterator[Span]:
    """A client span, child of the current one: send `traceparent_of(span)` onwards."""
    with tracer.start_as_current_span(name, kind=SpanKind.CLIENT) as span:
        yield span


def _span_context(traceparent: str) -> SpanContext | None:
    parts = traceparent.split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    try:
        trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)
    except ValueError:
        return None
    if not trace_id or not span_id:
        return None
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags))


@contextmanager
def consumer_span(name: str, traces: Iterable[str]) -> Iterator[Span | None]:
    """A span for a batch read from the log, linked to the traces of its events (up to
    `MAX_LINKS` of them); yields None, doing nothing, with tracing off."""
    if not enabled():
        yield None
        return
    links: list[Link] = []
    seen: set[str] = set()
    for found in traces:
        if len(links) >= MAX_LINKS:
            break
        if found in seen:
            continue
        seen.add(found)
        if (linked := _span_context(found)) is not None:
            links.append(Link(linked))
    token = context.attach(context.Context())  # a batch is a root of its own
    try:
        with tracer.start_as_current_span(name, kind=SpanKind.CONSUMER, links=links) as span:
            yield span
    finally:
        context.detach(token)
