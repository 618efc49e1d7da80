"""The gateway: the one public entrance, in front of every service.

A request is, in order:

1. Given a correlation id (`X-Request-ID` or `traceparent`, or a new one), returned in
   the answer and sent on to the service, whose log lines and events carry it.
2. Authenticated: a tenant's API key, or the operator's token (401 otherwise).
   `/healthz`, `/readyz`, `/docs` and `/openapi.json` are open; `/metrics` is the
   operator's. Public paths (`/v1/public/...`, `hubbub.gateway.public`) need nothing:
   the token in the path is the credential, which the publishing service checks.
3. Rate limited per key and per tenant, public paths per client address (429 with
   Retry-After; RateLimit headers on every answer).
4. Routed: the gateway's own routes (tenants, keys, users, flags, the route table), or
   a service's by path prefix, where the strangler fig may send it to the legacy
   application instead (`hubbub.gateway.routing`).
5. Proxied with the service's own timeout and circuit breaker, bodies streamed both
   ways. A service that is down answers 503 with Retry-After for its routes only; the
   rest keep working. The service is told the tenant in `X-Hubbub-Tenant`, and the key,
   signed with the deployment's secret (`hubbub.kernel.signing`), so a role can tell
   the gateway's word from anyone's.
6. Counted: Prometheus metrics per route, and a usage record on the log's `usage` topic.

The proxy path is plain ASGI, not the framework: it runs on every request, and the
framework's routing and validation would cost more than the gateway's own work.

This module is the entry (the `Gateway`: steps 1 to 4 and 6, starting and closing) and
the gateway's own app. Forwarding (5) is `hubbub.gateway.proxy`; reads shadowed to the
other side of a route and compared, `hubbub.gateway.shadow`; the merged API
description, `hubbub.gateway.openapi`.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field
from typing import Any, Final

import uvicorn
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from openfeature import api as openfeature_api
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import Message, Receive, Scope, Send

from hubbub.eventlog.ports import EventLog, LogUnavailable
from hubbub.gateway import api as gateway_api
from hubbub.gateway import flags_api, people_api, worker
from hubbub.gateway.access import operator, refusal
from hubbub.gateway.auth import Authenticator, token_of
from hubbub.gateway.directory import Directory
from hubbub.gateway.flags import FlagBook
from hubbub.gateway.health import Health
from hubbub.gateway.openapi import merged_spec
from hubbub.gateway.openfeature_provider import install
from hubbub.gateway.ports import Caller, TenantStore
from hubbub.gateway.progress import Progress
from hubbub.gateway.proxy import forward, refuse_unauthenticated, send_error
from hubbub.gateway.public import (
    DEFAULT_QUOTA,
    PUBLIC_CALLER,
    PUBLIC_ROUTE,
    PUBLIC_UPSTREAM,
    client_address,
    is_public,
)
from hubbub.gateway.public import refusal as public_refusal
from hubbub.gateway.ratelimit import headers, strictest
from hubbub.gateway.routing import Route, RouteTable
from hubbub.gateway.service import Connectors, People, Tenancy
from hubbub.gateway.shadow import ShadowReads
from hubbub.gateway.upstreams import Unavailable, Upstream
from hubbub.gateway.usage import UsageRecorder
from hubbub.kernel import diskfull
from hubbub.kernel.background import Background
from hubbub.kernel.clock import Clock
from hubbub.kernel.limits import BodyLimit, limit_by_path
from hubbub.kernel.ratelimit import Decision, Quota, RateLimiter
from hubbub.kernel.sealing import SecretBox
from hubbub.kernel.telemetry import Observed, header, route_of
from hubbub.kernel.validation import printable_validation_errors

PUBLIC: Final = frozenset({"/healthz", "/readyz", "/docs", "/openapi.json"})
WEB: Final = "web"
"""The upstream of the web app's pages: every path outside `/v1/` when it is set."""
OWN_PREFIXES: Final = ("/v1/tenants", "/v1/tenant", "/v1/users", "/v1/people", "/v1/keys",
                       "/v1/flags",
                       "/v1/platform", "/v1/sessions", "/v1/me", "/v1/invites",
                       "/v1/connectors",
                       "/metrics")  # fmt: skip
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
SPEC_TTL_S: Final = 30.0


@dataclass
class Gateway:
    """Everything a request passes through; `own` serves the gateway's own routes."""

    store: TenantStore
    event_log: EventLog
    auth: Authenticator
    limiter: RateLimiter
    key_quota: Quota
    tenant_quota: Quota
    upstreams: dict[str, Upstream]
    routes: RouteTable
    flags: FlagBook
    health: Health
    progress: Progress
    """Ingest rates and each role's lag behind the log (`/v1/platform/status`)."""
    usage: UsageRecorder
    clock: Clock
    """The gateway's one clock: every part of it reads time from this."""
    people: People
    """Sign-in, sessions and invitations: the web app's people."""
    secret_box: SecretBox
    """What seals the connector tokens tenants keep."""
    signin_quota: Quota = field(default_factory=lambda: Quota(10 / 60, 10, "sign-in attempts"))
    public_quota: Quota = DEFAULT_QUOTA
    """Requests to public paths, per client address."""
    control_poll_s: float = 0.5
    max_body_bytes: int = 1024 * 1024
    max_push_bytes: int = 64 * 1024 * 1024
    max_media_bytes: int = 16 * 1024 * 1024
    own: FastAPI = field(init=False)
    directory: Directory = field(init=False)
    """People's entries on the log (`PersonChanged`), as they change and at each start."""
    _features: OpenFeatureClient | None = None
    tasks: Background = field(default_factory=Background)
    """Its long-running tasks (route table, flags, health checks, usage), kept alive."""
    _shadows: ShadowReads = field(default_factory=ShadowReads)
    _spec: tuple[float, dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        self.directory = Directory(self.event_log, self.store, self.clock)
        self.own = _own_app(self)
        self._flag_domain = f"hubbub-gateway-{id(self)}"

    def enabled(self, route: Route, tenant: str) -> bool:
        """Whether the route's feature is on for `tenant`: on, unless a flag named
        `route.<path after /v1/, dots for slashes>` (e.g. `route.reports`) says
        otherwise. Evaluated through OpenFeature; only asked when such a flag exists."""
        name = feature_flag(route.prefix)
        if self._features is None or self.flags.governing(name, tenant) is None:
            return True
        context = EvaluationContext(targeting_key=tenant)
        return self._features.get_boolean_value(name, True, context)

    async def start(self) -> None:
        """Read the route table and flags, announce on the log each person whose entry it
        does not hold yet, check the upstreams, then keep them current."""
        await self.routes.catch_up()
        await self.flags.catch_up()
        await self.directory.announce_everyone()
        install(self.flags, self._flag_domain)
        self._features = openfeature_api.get_client(self._flag_domain)
        await self.health.check()
        worker.run(
            self.tasks,
            routes=self.routes,
            flags=self.flags,
            health=self.health,
            progress=self.progress,
            usage=self.usage,
            directory=self.directory,
            control_poll_s=self.control_poll_s,
        )

    async def close(self) -> None:
        await self.tasks.close()
        await self._shadows.close()
        for upstream in self.upstreams.values():
            await upstream.close()
        await self.limiter.close()
        self.store.close()
        await self.event_log.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC or _signing_in(scope):
            scope["hubbub.route"] = scope.get("path", "")
            await self.own(scope, receive, send)
            return
        if _page_path(scope["path"]) and WEB in self.upstreams:
            await self._page(scope, receive, send)
            return
        if is_public(scope):
            await self._public(scope, receive, send)
            return
        token = token_of(header(scope, b"authorization"), header(scope, b"x-api-key"))
        caller = await self.auth.caller(token) if token else None
        if caller is None:
            scope["hubbub.route"] = "unauthenticated"
            await refuse_unauthenticated(send, token is not None)
            return
        started = time.perf_counter()
        decision, quota = await self._limit(caller)
        status = 429

        async def counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        answer = _limited(decision, quota, counted)
        try:
            if not decision.allowed:
                scope["hubbub.route"] = "rate-limited"
                await _refuse_over_limit(answer, decision, quota)
            elif _own_path(scope["path"]):
                scope["hubbub.caller"] = caller
                await self.own(scope, receive, answer)
            else:
                await self._proxy(scope, receive, answer, caller)
        finally:
            if not caller.operator:
                feature = route_name(scope)
                self.usage.record(
                    caller.tenant, caller.key, feature, scope["method"], status,
                    time.perf_counter() - started,
                )  # fmt: skip

    async def _public(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A public path's request: no credentials asked or passed on, limited per client
        address, forwarded to publishing signed for nobody (`hubbub.gateway.public`)."""
        scope["hubbub.route"] = PUBLIC_ROUTE
        address = client_address(scope)
        decision = await self.limiter.acquire(f"public-from:{address}", self.public_quota)
        send = _limited(decision, self.public_quota, send)
        if not decision.allowed:
            await _refuse_over_limit(send, decision, self.public_quota)
            return
        if (why := public_refusal(scope)) is not None:  # after the limit: probes spend it too
            await send_error(send, 400, why)
            return
        upstream = self.upstreams.get(PUBLIC_UPSTREAM)
        if upstream is None:
            await send_error(send, 404, f"no service answers {PUBLIC_ROUTE} here")
            return
        await self._forward(scope, receive, send, PUBLIC_CALLER, upstream)

    async def _limit(self, caller: Caller) -> tuple[Decision, Quota]:
        """The key's limit first: a request its own key refuses spends nothing of the
        tenant's budget, so one busy key cannot starve the tenant's other keys."""
        by_key = await self.limiter.acquire(f"key:{caller.key}", self.key_quota)
        if not by_key.allowed:
            return by_key, self.key_quota
        by_tenant = await self.limiter.acquire(f"tenant:{caller.tenant}", self.tenant_quota)
        return strictest([(by_key, self.key_quota), (by_tenant, self.tenant_quota)])

    async def _proxy(self, scope: Scope, receive: Receive, send: Send, caller: Caller) -> None:
        route = self.routes.match(scope["path"])
        if route is None:
            scope["hubbub.route"] = "unmatched"
            await send_error(send, 404, f"no route for {scope['path']}")
            return
        scope["hubbub.route"] = route.prefix
        if (why := _refusal(caller, route, scope["method"])) is not None:
            await send_error(send, 403, why)
            return
        if not self.enabled(route, caller.tenant):
            name = feature_flag(route.prefix)
            await send_error(send, 403, f"{route.prefix} is not enabled for this workspace "
                                         f"(feature flag {name})")  # fmt: skip
            return
        side = route.side(caller.tenant)
        upstream = self._upstream(route, side)
        if isinstance(upstream, str):
            await send_error(send, 404 if side == "new" else 503, upstream)
            return
        other = self._upstream(route, "legacy" if side == "new" else "new")
        if route.shadow and scope["method"] in SAFE_METHODS and isinstance(other, Upstream):
            await self._shadows.answer(scope, receive, send, caller, upstream, other, route)
            return
        await self._forward(scope, receive, send, caller, upstream)

    async def _forward(
        self, scope: Scope, receive: Receive, send: Send, caller: Caller, upstream: Upstream
    ) -> None:
        """Forward to `upstream`; 503 at once when it is known to be down."""
        if self.health.down(upstream.name):
            await send_error(send, 503, f"the {upstream.name} service is down; the others answer",
                              retry_after=1)  # fmt: skip
            return
        try:
            await forward(scope, receive, send, caller, upstream)
        except Unavailable as error:
            await send_error(send, error.status, str(error), retry_after=error.retry_after_s)

    async def _page(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A page of the web app: forwarded as it is, with its cookies; the web role
        checks the person's session itself, and calls this gateway's API with it."""
        scope["hubbub.route"] = "web"
        upstream = self.upstreams[WEB]
        if self.health.down(WEB):
            await send_error(send, 503, "the web app is down; the API answers", retry_after=1)
            return
        try:
            await forward(scope, receive, send, None, upstream)
        except Unavailable as error:
            await send_error(send, error.status, str(error), retry_after=error.retry_after_s)

    def _upstream(self, route: Route, side: str) -> Upstream | str:
        """The upstream of a route's side, or why there is none."""
        name = route.upstream("legacy" if side == "legacy" else "new")
        if name is None:
            return f"no service answers {route.prefix} yet; it is served by legacy only"
        found = self.upstreams.get(name)
        if found is None:
            return f"{route.prefix} is routed to {name}, which is not configured"
        return found

    async def openapi(self) -> dict[str, Any]:
        """The whole API: the gateway's own routes and every service's, merged; cached."""
        now = self.clock.monotonic_s()
        if self._spec is not None and now - self._spec[0] < SPEC_TTL_S:
            return self._spec[1]
        spec = await merged_spec(self.own, self.upstreams, self.health, PUBLIC)
        self._spec = (now, spec)
        return spec


@functools.lru_cache(maxsize=1024)  # asked on every request, for a few prefixes
def feature_flag(prefix: str) -> str:
    """The flag that gates a route: `/v1/reports/top` is `route.reports.top`."""
    return "route." + prefix.removeprefix("/v1/").strip("/").replace("/", ".").lower()


def _limited(decision: Decision, quota: Quota, send: Send) -> Send:
    """`send`, adding the RateLimit headers of `decision` to the answer's start."""
    limited = [(k.encode(), v.encode()) for k, v in headers(decision, quota).items()]

    async def answer(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), *limited]
        await send(message)

    return answer


async def _refuse_over_limit(send: Send, decision: Decision, quota: Quota) -> None:
    wait = f"retry after {max(1, math.ceil(decision.retry_after_s))} s"
    await send_error(send, 429, f"too many requests for this {quota.name}: {wait}")


def _refusal(caller: Caller, route: Route, method: str) -> str | None:
    """Why `caller` may not call `route` (None: it may). Pushing into the firehose, which
    every tenant's mentions and analytics read, is the operator's or a key's the operator
    granted `ingest`; other writes need an editor, reads anyone."""
    if route.service == "ingest":
        if caller.operator or "ingest" in caller.permissions:
            return None
        return (
            "pushing into the shared firehose needs the operator's token or a key the"
            " operator granted the ingest permission (`hubbub keys grant`)"
        )
    if caller.operator:
        return "the operator's token has no tenant: use a tenant's key"
    if route.service == "notifications":  # a person's own inbox: anyone marks theirs read
        return refusal(caller, "viewer")
    return refusal(caller, "viewer" if method in SAFE_METHODS else "editor")


def _own_path(path: str) -> bool:
    """Whether `path` is one of the gateway's own routes: a prefix of `OWN_PREFIXES`,
    whole segments only (`/v1/me` is not `/v1/mentions`)."""
    return any(path == prefix or path.startswith(f"{prefix}/") for prefix in OWN_PREFIXES)


def _page_path(path: str) -> bool:
    """Whether `path` is the web app's: anything outside the API (`/v1/`) and the
    gateway's own operational routes."""
    return not (path == "/v1" or path.startswith("/v1/") or _own_path(path))


def _signing_in(scope: Scope) -> bool:
    """Whether the request is one of those that need no key: signing in, or an
    invitation's link (the credential is in the request itself)."""
    path: str = scope["path"]
    signing_in = path in ("/v1/sessions", "/v1/sessions/operator")
    return (signing_in and scope["method"] == "POST") or path.startswith("/v1/invitations/")


def caller_of(request: Request) -> Caller:
    """Who a request to the gateway's own routes speaks for (set by `Gateway`)."""
    found = request.scope.get("hubbub.caller")
    if not isinstance(found, Caller):
        raise HTTPException(401, "an API key is required: send `Authorization: Bearer <key>`")
    return found


def _own_app(gateway: Gateway) -> FastAPI:
    app = FastAPI(
        title="Hubbub", version="0.1.0", openapi_url=None, docs_url=None, redoc_url=None,
        description="Every Hubbub API, through the gateway. Send `Authorization: Bearer <key>`.",
    )  # fmt: skip
    app.add_exception_handler(RequestValidationError, printable_validation_errors)  # type: ignore[arg-type]
    diskfull.register(app, unavailable=(LogUnavailable,))
    app.include_router(
        gateway_api.build_router(
            Tenancy(gateway.store, gateway.auth.forget),
            Connectors(gateway.store, gateway.secret_box),
            gateway.routes,
            gateway.event_log,
            caller_of,
            gateway.clock,
            gateway.directory,
        )
    )
    app.include_router(
        flags_api.build_router(gateway.flags, gateway.event_log, caller_of, gateway.clock)
    )

    async def attempt(name: str) -> Decision:
        return await gateway.limiter.acquire(name, gateway.signin_quota)

    app.include_router(
        people_api.build_router(
            gateway.people, caller_of, attempt, gateway.auth.forget, gateway.directory
        )
    )

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> JSONResponse:
        """The gateway answers; with the status of every service behind it: ok, degraded
        (answering, but requests to it have been failing, or slowly) or down."""
        failing = gateway.tasks.failing()
        own = "degraded" if failing else "ok"
        roles: dict[str, str] = {"gateway": own, **gateway.health.report()}
        overall = gateway.health.overall()
        if failing and overall == "ok":
            overall = "degraded"
        body: dict[str, object] = {"status": overall, "roles": roles}
        if dependencies := gateway.health.dependencies():  # Redis: ok or degraded
            body["dependencies"] = dependencies
        if failing:  # a background task raised lately: which, and why
            body["failing_tasks"] = failing
        return JSONResponse(body)

    @app.get("/v1/platform/status", tags=["platform"])
    async def platform_status(request: Request) -> dict[str, Any]:
        """How the platform keeps up: events per second into the firehose topics (over
        the last seconds), each topic's head, and each role's status and how many events
        it is behind in each topic it follows. For any signed-in caller: it names no
        tenant's data."""
        caller_of(request)
        report = gateway.progress.report()
        own = "degraded" if gateway.tasks.failing() else "ok"
        report["roles"] = {"gateway": {"status": own}, **report["roles"]}
        return report

    @app.get("/readyz", tags=["operations"])
    async def readyz() -> JSONResponse:
        """503 while no service behind the gateway answers."""
        if gateway.health.overall() == "down":
            return JSONResponse({"status": "unavailable", "roles": gateway.health.report()}, 503)
        return JSONResponse({"status": "ready", "roles": gateway.health.report()})

    @app.get("/metrics", tags=["operations"])
    async def metrics(request: Request) -> Response:
        """Prometheus exposition, for the operator's token only: the series name routes
        and tenants' traffic."""
        operator(caller_of(request))
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi() -> JSONResponse:
        return JSONResponse(await gateway.openapi())

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="Hubbub API")

    return app


def route_name(scope: Scope) -> str:
    """The route of a request to the gateway: a service's prefix, or an own route."""
    found = scope.get("hubbub.route")
    return found if isinstance(found, str) else route_of(scope)


def observed(gateway: Gateway) -> Observed:
    """The gateway as served: with correlation ids and per-route metrics around it."""
    limit = limit_by_path(gateway.max_body_bytes, gateway.max_push_bytes, gateway.max_media_bytes)
    return Observed(BodyLimit(gateway, limit), "gateway", route=route_name)


def gateway_server(gateway: Gateway, host: str, port: int) -> uvicorn.Server:
    """The HTTP server of the gateway on `host:port` (`serve()` it)."""
    config = uvicorn.Config(
        observed(gateway), host=host, port=port, log_level="warning", lifespan="off",
        access_log=False, proxy_headers=False,  # the edge: a client's X-Forwarded-* is not trusted
    )  # fmt: skip
    return uvicorn.Server(config)
