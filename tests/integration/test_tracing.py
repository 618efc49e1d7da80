"""OpenTelemetry across HTTP and the log: a push through the gateway is one trace, and
the analytics batch that folds its posts links to it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from hubbub.analytics.duckdb import LiveDuckDB
from hubbub.analytics.worker import catch_up
from hubbub.kernel import tracing
from hubbub.kernel.clock import SystemClock
from tests.conftest import FIXTURES
from tests.support.stack import auth, start_stack

CLOCK = SystemClock()

_exporter = InMemorySpanExporter()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on, into memory, for one test (a process sets its provider once)."""
    if not tracing.enabled():
        tracing.configure_tracing("tests", None, exporter=_exporter)
    tracing._state["enabled"] = True
    _exporter.clear()
    yield _exporter
    tracing._state["enabled"] = False


async def test_a_push_is_one_trace_from_gateway_to_rollups(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    built, exits = await start_stack(tmp_path / "data")
    async with exits:
        pusher = await built.pusher(await built.tenant("newsroom"))
        spans.clear()
        pushed = await built.client.post(
            "/v1/ingest/jetstream", content=(FIXTURES / "jetstream-sample.jsonl").read_bytes(),
            headers={**auth(pusher), "traceparent": f"00-{caller_trace}-{'1' * 16}-01"},
        )  # fmt: skip
        assert pushed.status_code == 200
        store = LiveDuckDB(tmp_path / "data", CLOCK)
        try:
            assert await catch_up(store, built.platform.event_log, clock=CLOCK) > 0
        finally:
            store.close()

    finished = spans.get_finished_spans()
    by_kind = {kind: [s for s in finished if s.kind == kind] for kind in SpanKind}
    http = by_kind[SpanKind.SERVER] + by_kind[SpanKind.CLIENT]
    assert {f"{s.context.trace_id:032x}" for s in http} == {caller_trace}
    gateway = next(s for s in by_kind[SpanKind.SERVER] if s.name == "POST /v1/ingest")
    client = next(s for s in by_kind[SpanKind.CLIENT] if s.name == "POST ingest")
    service = next(s for s in by_kind[SpanKind.SERVER] if s.name == "POST /v1/ingest/{source}")
    assert client.parent is not None
    assert client.parent.span_id == gateway.context.span_id
    assert service.parent is not None
    assert service.parent.span_id == client.context.span_id
    fold = next(s for s in by_kind[SpanKind.CONSUMER] if s.name == "analytics fold")
    assert f"{caller_trace}" in {f"{link.context.trace_id:032x}" for link in fold.links}
