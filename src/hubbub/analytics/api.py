"""`/v1/reports/...`: reports over the rollups, as JSON or CSV (`format=csv`).

The routes only read: the analytics worker writes the rollups. Reads run in a thread,
each on a cursor of its own, so they never wait for the worker's transactions. Answers
are cached (`hubbub.kernel.cache`), stamped with the rollups' log positions.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Final, Literal
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from hubbub.analytics import best_times_api, service
from hubbub.analytics.ports import RollupStore
from hubbub.analytics.rollups import search_key
from hubbub.analytics.service import Bucket, ReportError, SeriesKind, Window
from hubbub.analytics.terms import InvalidTerm, term_key
from hubbub.analytics.views import AlertViews
from hubbub.analytics.watches_api import tenant_of
from hubbub.kernel.cache import Cache, cached
from hubbub.kernel.clock import Clock
from hubbub.settings import Settings

Format = Literal["json", "csv"]
StartQ = Annotated[datetime, Query(description="Start of the window (ISO 8601, with offset).")]
EndQ = Annotated[datetime, Query(description="End of the window, excluded.")]
FormatQ = Annotated[Format, Query(description="json, or csv for a spreadsheet.")]
LimitQ = Annotated[int, Query(ge=1, le=1000)]
# A top list is ranked up to `offset + limit` in SQL, with spare rows to settle ties:
# bounded, so it fits DuckDB's integers and the memory of one request.
OffsetQ = Annotated[int, Query(ge=0, le=service.MAX_TOP_OFFSET)]
_UNSAFE_IN_FILENAME: Final = re.compile(r"[^A-Za-z0-9._-]")


def _window(
    start: datetime,
    end: datetime,
    settings: Settings,
    clock: Clock,
    tiers: tuple[tuple[str, int], ...] = service.SERIES_TIERS,
) -> Window:
    """The window asked for, widened to whole buckets where retention dropped the finer
    rollups the report reads (`service.retained`)."""
    now_minute = clock.now_us() // 60_000_000
    try:
        return service.retained(Window(start, end), settings.rollup_horizons(now_minute), tiers)
    except ReportError as error:
        raise HTTPException(422, str(error)) from error


def _series_key(kind: str, key: str) -> str:
    if kind == "hashtag":
        return key.lstrip("#").lower()
    if kind == "term":
        try:
            return term_key(key)
        except InvalidTerm as error:
            raise HTTPException(422, str(error)) from error
    return key


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise HTTPException(422, f"unknown time zone {name!r}: use an IANA name") from error


def _answer(body: bytes, format: Format, name: str) -> Response:
    if format == "json":
        return Response(body, media_type="application/json")
    rows: list[dict[str, Any]] = msgspec.json.decode(body)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["empty"])
    writer.writeheader()
    writer.writerows(rows)
    return Response(
        out.getvalue(), media_type="text/csv", headers={"Content-Disposition": _attachment(name)}
    )


def _attachment(name: str) -> str:
    """The Content-Disposition of the download `name`.csv. A header holds Latin-1 only,
    and a quote or a line break in it would end it early, so the name (a report's key,
    as the caller typed it) goes in percent-encoded UTF-8 (RFC 6266), after a fallback
    for old clients with anything but letters, digits, `.`, `_` and `-` replaced."""
    filename = f"{name}.csv"
    fallback = _UNSAFE_IN_FILENAME.sub("_", filename)
    encoded = quote(filename.encode("utf-8", "replace"), safe="")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


class _AtPositions:
    """`cache` with every value stamped with the rollups' log positions it was computed
    at; a value of other positions is missing. A report thus keeps one entry, replaced
    as the rollups advance, rather than one per batch folded (twice a second under a
    firehose): never asked again, those stayed until the cache's 10,000 entries were
    full, about 190 KB each for a two-day minute series, and under the soak
    benchmark's report load the analytics process kept 20 MB more of them a minute."""

    def __init__(self, cache: Cache, positions: str) -> None:
        self._cache = cache
        self._positions = positions
        self._stamp = positions.encode() + b"\n"

    async def get(self, key: str) -> bytes | None:
        value = await self._cache.get(key)
        if value is None or not value.startswith(self._stamp):
            return None
        return value[len(self._stamp) :]

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        await self._cache.set(key, self._stamp + value, ttl_s)

    async def lock(self, key: str, ttl_s: float) -> bool:
        # Per positions: a request after a batch need not wait for one computed before it.
        return await self._cache.lock(f"{key}@{self._positions}", ttl_s)

    async def unlock(self, key: str) -> None:
        await self._cache.unlock(f"{key}@{self._positions}")

    async def close(self) -> None:
        """The cache is the platform's: it closes it."""


class SeriesRow(BaseModel):
    bucket: str = Field(description="Start of the bucket, ISO 8601 in the time zone asked.")
    value: int


class TopRow(BaseModel):
    rank: int
    key: str
    count: int


class SummaryRow(BaseModel):
    page: str
    posts: int
    replies: int
    mentions_received: int
    likes_received: int
    reposts_received: int
    replies_received: int


def _rows(row: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    """The 200 of a report: its rows as JSON, or as CSV with `format=csv`."""
    return {
        200: {
            "description": "The report's rows; CSV (a header line, then a row a line) with"
            " `format=csv`.",
            "content": {
                "application/json": {"schema": {"type": "array", "items": row.model_json_schema()}},
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    }


RollupsOf = Callable[[], Awaitable[RollupStore]]
ViewsOf = Callable[[], Awaitable[AlertViews]]


def build_router(
    *,
    rollups_of: RollupsOf,
    views_of: ViewsOf,
    cache_of: Callable[[], Cache],
    settings: Settings,
    clock: Clock,
) -> APIRouter:
    """The report routes, over the rollups `rollups_of` opens (and keeps up) and the
    watches `views_of` folds; answers cached in `cache_of()`."""
    router = APIRouter(prefix="/v1/reports", tags=["reports"])

    async def run(
        request: Request,
        report: Any,
        shape: Callable[[Any], list[dict[str, Any]]],
        *args: Any,
        tenant: str = "",
    ) -> bytes:
        """The report's rows as JSON, through the cache. The key holds the request and
        the `tenant` of a report of the caller's own (a search's), so no other tenant is
        ever served it; the entry is stamped with the rollups' log positions, so it is
        never served once the rollups advance (`_AtPositions`)."""
        store = await rollups_of()
        params = sorted((k, v) for k, v in request.query_params.items() if k != "format")
        positions = await asyncio.to_thread(store.positions)
        key = f"report:{tenant}\x1f{request.url.path}?{params}"

        async def compute() -> bytes:
            try:
                rows = shape(await asyncio.to_thread(report, store.query, *args))
            except ReportError as error:
                raise HTTPException(422, str(error)) from error
            return msgspec.json.encode(rows)

        ttl = settings.report_cache_ttl_s
        at = _AtPositions(cache_of(), str(sorted(positions.items())))
        return await cached(at, key, compute, ttl_s=ttl)

    async def _check_watched(request: Request, term: str) -> None:
        """404 unless the caller's tenant watches `term`: the same answer whether another
        tenant watches it or no one does, so a tenant cannot learn what others watch."""
        tenant = tenant_of(request)
        views = await views_of()
        if not (await views.current(views.watches)).watches_term(tenant, term):
            raise HTTPException(
                404,
                f"the term {term!r} is not counted for you: watch it (POST /v1/watches, kind"
                " term) and it is counted from then on; `hubbub analytics rebuild` counts it"
                " over the whole log",
            )

    @router.get("/series/{kind}/{key}", responses=_rows(SeriesRow))
    async def series(
        request: Request,
        kind: SeriesKind,
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
        """A page's, a hashtag's or a watched term's counts per minute, hour or day, in a
        time zone, or the matches of one of the caller's listening searches (by its id).
        A term is counted from the moment a watch names it; a term the tenant does not
        watch is answered 404, whether or not another tenant watches it. A search is
        counted within its tenant: another tenant's search id counts nothing here."""
        name = key = _series_key(kind, key)
        tenant = ""
        if kind == "term":
            await _check_watched(request, key)
        elif kind == "search":
            tenant = tenant_of(request)
            key = search_key(tenant, key)
        body = await run(
            request,
            service.series,
            lambda rows: [{"bucket": moment.isoformat(), "value": n} for moment, n in rows],
            kind, key, _window(start, end, settings, clock), bucket, _zone(tz), metric,
            tenant=tenant,
        )  # fmt: skip
        return _answer(body, format, f"{kind}-{name}-{bucket}")

    @router.get("/top/{what}", responses=_rows(TopRow))
    async def top(
        request: Request,
        what: Literal["hashtags", "mentioned", "engaged"],
        start: StartQ,
        end: EndQ,
        limit: LimitQ = 20,
        offset: OffsetQ = 0,
        format: FormatQ = "json",
    ) -> Response:
        """Top hashtags, most mentioned pages, or pages by engagement received; paginated."""
        body = await run(
            request,
            service.top,
            lambda rows: [
                {"rank": offset + i + 1, "key": key, "count": n} for i, (key, n) in enumerate(rows)
            ],
            what, _window(start, end, settings, clock, service.TOP_TIERS),
            limit, offset,
        )  # fmt: skip
        return _answer(body, format, f"top-{what}")

    @router.get("/pages/{page}/summary", responses=_rows(SummaryRow))
    async def summary(
        request: Request, page: str, start: StartQ, end: EndQ, format: FormatQ = "json"
    ) -> Response:
        """A page's posts, replies, mentions and engagement received over the window."""
        body = await run(
            request,
            service.page_summary,
            lambda counts: [{"page": page, **counts}],
            page, _window(start, end, settings, clock),
        )  # fmt: skip
        return _answer(body, format, f"summary-{page}")

    outer = APIRouter()
    outer.include_router(router)
    outer.include_router(
        best_times_api.build_router(rollups_of=rollups_of, settings=settings, clock=clock)
    )
    return outer
