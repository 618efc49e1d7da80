"""The HTTP application of a process: every router mounted in one place, plus operations.

- `/healthz`: the process is alive.
- `/readyz`: its dependencies answer (the event log), 503 with the reason otherwise.
- `/metrics`: Prometheus exposition.
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Scope

from hubbub.analytics import api as reports_api
from hubbub.analytics import watches_api
from hubbub.bootstrap import Platform, open_request_signer
from hubbub.eventlog.ports import LogUnavailable
from hubbub.ingest import api as ingest_api
from hubbub.kernel import diskfull
from hubbub.kernel.cache import shared_servers
from hubbub.kernel.limits import BodyLimit, limit_by_path
from hubbub.kernel.signing import SignedOnly
from hubbub.kernel.telemetry import Observed, route_of
from hubbub.kernel.validation import printable_validation_errors
from hubbub.listening import api as listening_api
from hubbub.listening import inbox_api
from hubbub.mentions import api as mentions_api
from hubbub.notifications import api as notifications_api
from hubbub.publishing import api as publishing_api
from hubbub.publishing import calendar_api, review_api

READY_TIMEOUT_S = 2.0


ROLES = ("all", "ingest", "mentions", "analytics", "publishing", "notifications", "listening")


def create_app(platform: Platform, role: str = "all") -> ASGIApp:
    """The API of `role`: its own routes, plus the operations routes every process has.

    With the mentions role, `GET /v1/mentions` is answered ahead of the framework (see
    `hubbub.mentions.api`); everything else goes through FastAPI.
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: use {', '.join(ROLES)}")
    app = FastAPI(title="Hubbub", version="0.1.0")
    app.add_exception_handler(RequestValidationError, printable_validation_errors)  # type: ignore[arg-type]
    diskfull.register(app, unavailable=(LogUnavailable,))
    if role in ("all", "ingest"):
        app.include_router(
            ingest_api.build_router(
                lambda source, instance: platform.ingestor(source, instance=instance),
                max_body_bytes=platform.settings.max_push_bytes,
                mastodon_instances=platform.settings.mastodon_instance_list,
            )
        )
    if role in ("all", "mentions"):
        app.include_router(mentions_api.build_router(platform.mentions))
    if role in ("all", "analytics"):
        app.include_router(
            reports_api.build_router(
                rollups_of=platform.analytics,
                views_of=platform.alert_views,
                cache_of=platform.cache,
                settings=platform.settings,
                clock=platform.clock,
            )
        )
        context = watches_api.RouteContext(
            event_log=platform.event_log,
            views_of=platform.alert_views,
            secret_box_of=platform.secret_box,
            settings=platform.settings,
            clock=platform.clock,
        )
        app.include_router(watches_api.build_router(context))
    if role in ("all", "publishing"):
        app.include_router(
            publishing_api.build_router(platform.publishing, platform.mastodon_logins)
        )
        app.include_router(review_api.build_router(platform.publishing))
        app.include_router(
            calendar_api.build_router(platform.publishing, platform.settings.relational)
        )

    if role in ("all", "notifications"):
        app.include_router(notifications_api.build_router(platform.notifications))
    if role in ("all", "listening"):
        settings = platform.settings
        live = listening_api.LivePolicy(
            settings.listening_stream_s, settings.listening_heartbeat_s,
            settings.listening_live_poll_s,
        )  # fmt: skip
        app.include_router(listening_api.build_router(platform.listening, live))
        app.include_router(inbox_api.build_inbox_router(platform.listening_inbox, live))

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, object]:
        """`ok`; `degraded` while a shared server (Redis) fails and is done without, or
        while a background task (a log follower, the alert monitor) fails and restarts.
        `positions`: the last log position this process has folded, per topic."""
        guards = shared_servers(platform.cache()) if role in ("all", "analytics") else {}
        dependencies = {name: guard.status for name, guard in guards.items()}
        failing = platform.background.failing()
        degraded = "degraded" in dependencies.values() or bool(failing)
        body: dict[str, object] = {"status": "degraded" if degraded else "ok"}
        if dependencies:
            body["dependencies"] = dependencies
        if failing:
            body["failing_tasks"] = failing
        mentions, analytics = role in ("all", "mentions"), role in ("all", "analytics")
        if positions := await platform.positions(mentions=mentions, analytics=analytics):
            body["positions"] = positions
        return body

    @app.get("/readyz", tags=["operations"])
    async def readyz() -> Response:
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                await platform.event_log.stats()
        except Exception as error:
            reason = f"event log ({platform.settings.event_log}) not reachable: {error}"
            return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
        if role == "publishing" and (why := await platform.publishing_unready()) is not None:
            return JSONResponse({"status": "unavailable", "reason": why}, status_code=503)
        if role == "notifications" and (why := await platform.notifications_unready()):
            return JSONResponse({"status": "unavailable", "reason": why}, status_code=503)
        if role == "listening" and (why := await platform.listening_unready()):
            return JSONResponse({"status": "unavailable", "reason": why}, status_code=503)
        return JSONResponse({"status": "ready", "event_log": platform.settings.event_log})

    @app.get("/metrics", tags=["operations"])
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    served: ASGIApp = app
    if role in ("all", "mentions"):
        served = mentions_api.MentionsFastPath(app, platform.mentions)
    settings = platform.settings
    signed = SignedOnly(served, open_request_signer(settings))
    limits = limit_by_path(
        settings.max_body_bytes, settings.max_push_bytes, settings.max_media_bytes
    )
    limited = BodyLimit(signed, limits)
    return Observed(limited, role, route=_route)


def _route(scope: Scope) -> str:
    """The route template of a request: FastAPI's, or the mentions fast path's."""
    return mentions_api.PATH if scope["path"] == mentions_api.PATH else route_of(scope)
