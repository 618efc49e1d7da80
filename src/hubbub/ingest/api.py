"""HTTP push: `POST /v1/ingest/{source}` with an NDJSON body, answered with the counts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated

import structlog
from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel

from hubbub.ingest.ports import SOURCES, TooManyIngestors
from hubbub.ingest.service import BatchSink
from hubbub.kernel.signing import KEY, TENANT
from hubbub.kernel.telemetry import current_trace

log = structlog.get_logger()


class IngestRead(BaseModel):
    accepted: int
    skipped: int
    rejected: int
    duplicates: int
    skipped_reasons: dict[str, int]


IngestorFor = Callable[[str, str], Awaitable[BatchSink]]
"""The started ingestor of a source and Mastodon instance, made on first use."""


def build_router(
    ingestor_for: IngestorFor, *, max_body_bytes: int, mastodon_instances: Iterable[str]
) -> APIRouter:
    """The push route; `mastodon_instances` may be named in `?instance=` (and `push`)."""
    router = APIRouter(prefix="/v1/ingest", tags=["ingest"])
    allowed_instances = {"push", *mastodon_instances}

    @router.post("/{source}")
    async def push(
        source: str,
        request: Request,
        instance: Annotated[str, Query(max_length=253)] = "push",
    ) -> IngestRead:
        """Ingest a batch of source events, one JSON document per line.

        Bad lines are dead-lettered and counted as rejected; the request still succeeds.
        For Mastodon, `instance` names the server the status ids belong to (they are
        unique only there), so deletes and replies find the right statuses; it must be
        one of HUBBUB_MASTODON_INSTANCES (or `push`). Every event made records who
        pushed it (`pushed_by`: tenant and key, as the gateway signed them).
        """
        if source not in SOURCES:
            raise HTTPException(404, f"unknown source {source!r}: use {', '.join(SOURCES)}")
        if source == "mastodon" and instance not in allowed_instances:
            known = ", ".join(sorted(allowed_instances))
            raise HTTPException(
                422, f"instance {instance!r} is not allowed: use one of {known}"
                " (HUBBUB_MASTODON_INSTANCES)",
            )  # fmt: skip
        body = await _read_body(request, max_body_bytes)
        lines = [line for line in body.split(b"\n") if line.strip()]
        try:
            ingestor = await ingestor_for(source, instance)
        except TooManyIngestors as error:
            raise HTTPException(503, str(error), headers={"Retry-After": "60"}) from error
        pushed_by = (
            f"{request.headers.get(TENANT.decode(), '')}/{request.headers.get(KEY.decode(), '')}"
        )
        summary = await ingestor.ingest(lines, current_trace(), pushed_by)
        log.info(
            "push ingested", source=source, accepted=summary.accepted,
            rejected=summary.rejected, duplicates=summary.duplicates,
        )  # fmt: skip
        return IngestRead(
            accepted=summary.accepted,
            skipped=summary.skipped,
            rejected=summary.rejected,
            duplicates=summary.duplicates,
            skipped_reasons=summary.skipped_reasons,
        )

    return router


async def _read_body(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"the body is over {limit} bytes: send smaller batches")
        chunks.append(chunk)
    return b"".join(chunks)
