"""`/v1/reports/...`: reports over the rollups, as JSON or CSV (`format=csv`).

The routes only read: the analytics worker writes the rollups. Reads run in a thread,
each on a DuckDB cursor of its own, so they never wait for the worker's transactions.
"""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import JSONResponse, Response

from hubbub.analytics import reports
from hubbub.analytics.reports import Bucket, ReportError, Window
from hubbub.bootstrap import Platform

Format = Literal["json", "csv"]
StartQ = Annotated[datetime, Query(description="Start of the window (ISO 8601, with offset).")]
EndQ = Annotated[datetime, Query(description="End of the window, excluded.")]
FormatQ = Annotated[Format, Query(description="json, or csv for a spreadsheet.")]
LimitQ = Annotated[int, Query(ge=1, le=1000)]
OffsetQ = Annotated[int, Query(ge=0)]


def _window(start: datetime, end: datetime) -> Window:
    try:
        return Window(start, end)
    except ReportError as error:
        raise HTTPException(422, str(error)) from error


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise HTTPException(422, f"unknown time zone {name!r}: use an IANA name") from error


def _answer(rows: list[dict[str, Any]], format: Format, name: str) -> Response:
    if format == "json":
        return JSONResponse(rows)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["empty"])
    writer.writeheader()
    writer.writerows(rows)
    disposition = f'attachment; filename="{name}.csv"'
    return Response(
        out.getvalue(), media_type="text/csv", headers={"Content-Disposition": disposition}
    )


def build_router(platform: Platform) -> APIRouter:
    router = APIRouter(prefix="/v1/reports", tags=["reports"])

    async def run(report: Any, *args: Any) -> Any:
        store = await platform.analytics()
        try:
            return await asyncio.to_thread(report, store.query, *args)
        except ReportError as error:
            raise HTTPException(422, str(error)) from error

    @router.get("/series/{kind}/{key}")
    async def series(
        kind: Literal["page", "hashtag"],
        key: str,
        start: StartQ,
        end: EndQ,
        bucket: Bucket = "hour",
        tz: Annotated[str, Query(description="IANA time zone of the buckets.")] = "UTC",
        metric: Annotated[str, Query(description="For pages: a counter, or engagement.")] = (
            "posts"
        ),
        format: FormatQ = "json",
    ) -> Response:
        """A page's or a hashtag's counts per minute, hour or day, in a time zone."""
        zone = _zone(tz)
        rows = await run(reports.series, kind, key.lower() if kind == "hashtag" else key,
                         _window(start, end), bucket, zone, metric)  # fmt: skip
        return _answer(
            [{"bucket": moment.isoformat(), "value": value} for moment, value in rows],
            format,
            f"{kind}-{key}-{bucket}",
        )

    @router.get("/top/{what}")
    async def top(
        what: Literal["hashtags", "mentioned", "engaged"],
        start: StartQ,
        end: EndQ,
        limit: LimitQ = 20,
        offset: OffsetQ = 0,
        format: FormatQ = "json",
    ) -> Response:
        """Top hashtags, most mentioned pages, or pages by engagement received; paginated."""
        rows = await run(reports.top, what, _window(start, end), limit, offset)
        return _answer(
            [{"rank": offset + i + 1, "key": key, "count": n} for i, (key, n) in enumerate(rows)],
            format,
            f"top-{what}",
        )

    @router.get("/pages/{page}/summary")
    async def summary(page: str, start: StartQ, end: EndQ, format: FormatQ = "json") -> Response:
        """A page's posts, replies, mentions and engagement received over the window."""
        counts = await run(reports.page_summary, page, _window(start, end))
        return _answer([{"page": page, **counts}], format, f"summary-{page}")

    return router
