"""`/v1/watches` and `/v1/webhooks`: a tenant's spike-alert watches, and the webhooks its
alerts are POSTed to, as `hubbub watch` and `hubbub webhook` manage them.

Changes are appended to the log's `control` topic (`WatchChanged`, `WebhookChanged`);
reads answer from views folded from the log (`hubbub.analytics.views`), caught up
before each read, so the API, the CLI and the alert monitor see the same watches, and
a change is visible to the next read. The tenant is the one the gateway names: a
request without one is refused (401). A tenant sees and changes only its own: another
tenant's watch or webhook is answered 404, as one that does not exist, so ids do not
leak across tenants.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Final, Literal, get_type_hints

import msgspec
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, StringConstraints, ValidationInfo, field_validator

from hubbub.analytics.alerts import Alert, watch_target
from hubbub.analytics.views import AlertViews, WatchesView
from hubbub.eventlog.ports import EventLog
from hubbub.kernel.clock import Clock
from hubbub.kernel.commands import short_id, stamped
from hubbub.kernel.destinations import Network, check_url
from hubbub.kernel.events import WatchChanged, WebhookChanged, WebhookDelivered
from hubbub.kernel.sealing import SecretBox
from hubbub.kernel.signing import TENANT_HEADER
from hubbub.kernel.validation import PlainText
from hubbub.settings import Settings

# The kinds are read from the event, so a kind added there is accepted here unchanged.
WatchKind = get_type_hints(WatchChanged)["kind"]
MAX_OFFSET: Final = 10_000
"""No tenant keeps more deliveries than this (`HUBBUB_WEBHOOK_DELIVERIES_KEPT`)."""
Sensitivity = Literal["high", "medium", "low"]
LimitQ = Annotated[int, Query(ge=1, le=1000, description="At most this many.")]
OffsetQ = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Skip this many of the newest.")]


class WatchCreate(BaseModel):
    """A watch to start. A hashtag may be given with `#` and in any case."""

    # mypy cannot check a type read at run time; pydantic checks it, and says the kinds.
    kind: WatchKind  # type: ignore[valid-type]
    target: Annotated[str, StringConstraints(strip_whitespace=True, max_length=512), PlainText]
    sensitivity: Sensitivity | None = Field(
        None, description="high alerts on smaller rises; default: HUBBUB_SPIKE_SENSITIVITY."
    )

    @field_validator("target")
    @classmethod
    def _as_matched(cls, target: str, info: ValidationInfo) -> str:
        """The target as the watch matches it; `kind` is absent when it was invalid."""
        target = watch_target(info.data.get("kind", ""), target)
        if not target:
            raise ValueError("the target is empty: name what to watch")
        return target


class WatchChange(BaseModel):
    """What may change in a watch in place; its kind and target make it what it is."""

    sensitivity: Sensitivity


class WatchRead(BaseModel):
    id: str
    tenant: str
    kind: str
    target: str
    sensitivity: str


class WebhookCreate(BaseModel):
    """A webhook to add; without a `secret`, one is made (and answered once). The URL's
    host must be a public address, unless `HUBBUB_WEBHOOK_ALLOWED_NETWORKS` allows it
    (`_check_url`: the allowed networks are settings, which a model cannot read)."""

    url: Annotated[str, StringConstraints(max_length=2048)]
    secret: Annotated[str | None, Field(min_length=1, max_length=256)] = None


class WebhookRead(BaseModel):
    """A webhook as listed: its signing secret is never shown again."""

    id: str
    tenant: str
    url: str


class WebhookSecretRead(WebhookRead):
    """The answer to adding a webhook, the only one that holds its signing secret."""

    secret: str


class DeliveryRead(BaseModel):
    """One alert delivered (or given up on) to one webhook; `status` 0: no answer."""

    webhook: str
    alert: str
    status: int
    attempts: int
    error: str
    delivered_at: datetime


def tenant_of(request: Request) -> str:
    """The tenant a request acts for: the one the gateway authenticated and named in
    `X-Hubbub-Tenant` (dropping any a client sent). Without it, 401: a role has no
    tenant of its own to fall back on."""
    tenant = request.headers.get(TENANT_HEADER)
    if not tenant:
        raise HTTPException(
            401,
            f"no tenant: call through the gateway with an API key ({TENANT_HEADER} is not set)",
        )
    return tenant


Tenant = Annotated[str, Depends(tenant_of)]


@dataclass(frozen=True)
class RouteContext:
    """What the watch and webhook routes use: the log they append changes to, the views
    that fold it, what seals webhook secrets, the settings and the clock."""

    event_log: EventLog
    views_of: Callable[[], Awaitable[AlertViews]]
    secret_box_of: Callable[[], SecretBox]
    settings: Settings
    clock: Clock


def build_router(ctx: RouteContext) -> APIRouter:
    """The watch, alert and webhook routes, acting for the tenant the gateway names."""
    router = APIRouter()
    router.include_router(_watch_routes(ctx))
    router.include_router(_alert_routes(ctx))
    router.include_router(_webhook_routes(ctx))
    return router


class AlertRead(BaseModel):
    watch: str
    kind: str
    target: str
    minute: datetime = Field(description="The minute the spike was seen in (UTC).")
    count: int = Field(description="Posts in that minute.")
    usual: float = Field(description="What that minute usually holds.")
    threshold: float


def _alert_read(alert: Alert) -> AlertRead:
    return AlertRead(
        watch=alert.watch, kind=alert.kind, target=alert.target,
        minute=datetime.fromtimestamp(alert.minute * 60, UTC), count=alert.count,
        usual=alert.usual, threshold=alert.threshold,
    )  # fmt: skip


def _alert_routes(ctx: RouteContext) -> APIRouter:
    router = APIRouter(prefix="/v1/alerts", tags=["watches"])

    @router.get("")
    async def recent(
        tenant: Tenant, limit: Annotated[int, Query(ge=1, le=200)] = 50
    ) -> list[AlertRead]:
        """The tenant's newest spike alerts, newest first."""
        views = await ctx.views_of()
        found = await views.current(views.last_alerts)
        return [_alert_read(a) for a in found.recent(tenant, limit)]

    return router


def _watch_routes(ctx: RouteContext) -> APIRouter:
    router = APIRouter(prefix="/v1/watches", tags=["watches"])

    async def watches() -> WatchesView:
        views = await ctx.views_of()
        return await views.current(views.watches)

    async def find(tenant: str, watch_id: str) -> WatchChanged:
        found = (await watches()).get(watch_id)
        if found is None or found.tenant != tenant:
            raise HTTPException(404, f"no watch {watch_id!r}")
        return found

    @router.post("", status_code=201)
    async def add(tenant: Tenant, body: WatchCreate) -> WatchRead:
        """Watch a hashtag, a page or a term for spikes; answers the watch, with its id."""
        mine = (await watches()).of_tenant(tenant)
        _check_room(len(mine), ctx.settings.watches_per_tenant, "watches")
        sensitivity = body.sensitivity or ctx.settings.spike_sensitivity
        change = WatchChanged(
            id="", key=tenant, ts=0, source="api", tenant=tenant, watch=short_id(),
            kind=body.kind, target=body.target, sensitivity=sensitivity,
        )  # fmt: skip
        await _append(ctx, change, change.watch)
        return _watch_read(change)

    @router.get("")
    async def list_watches(tenant: Tenant) -> list[WatchRead]:
        """The tenant's active watches."""
        return [_watch_read(w) for w in (await watches()).of_tenant(tenant)]

    @router.get("/{watch_id}")
    async def get(tenant: Tenant, watch_id: str) -> WatchRead:
        """One of the tenant's active watches."""
        return _watch_read(await find(tenant, watch_id))

    @router.patch("/{watch_id}")
    async def change(tenant: Tenant, watch_id: str, body: WatchChange) -> WatchRead:
        """Change a watch's sensitivity; the next check uses it."""
        found = await find(tenant, watch_id)
        changed = msgspec.structs.replace(found, sensitivity=body.sensitivity)
        await _append(ctx, changed, found.watch)
        return _watch_read(changed)

    @router.delete("/{watch_id}", status_code=204, response_class=Response)
    async def remove(tenant: Tenant, watch_id: str) -> None:
        """Stop a watch: it raises no more alerts."""
        found = await find(tenant, watch_id)
        await _append(ctx, msgspec.structs.replace(found, active=False), found.watch)

    return router


def _webhook_routes(ctx: RouteContext) -> APIRouter:
    router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
    allowed = tuple(ctx.settings.webhook_allowed_networks)

    async def views() -> AlertViews:
        return await ctx.views_of()

    @router.post("", status_code=201)
    async def add(tenant: Tenant, body: WebhookCreate) -> WebhookSecretRead:
        """Add a webhook for the tenant's alerts. The answer holds the secret that signs
        them (`Hubbub-Signature`), and is the only one that does: keep it."""
        _check_url(body.url, allowed)
        found = await views()
        mine = (await found.current(found.webhooks)).of_tenant(tenant)
        _check_room(len(mine), ctx.settings.webhooks_per_tenant, "webhooks")
        secret = body.secret or secrets.token_urlsafe(32)
        hook = WebhookChanged(
            id="", key=tenant, ts=0, source="api", tenant=tenant, webhook=short_id(),
            url=body.url, secret=ctx.secret_box_of().seal(secret),
        )  # fmt: skip
        await _append(ctx, hook, hook.webhook)
        return WebhookSecretRead(id=hook.webhook, tenant=tenant, url=hook.url, secret=secret)

    @router.get("")
    async def list_hooks(tenant: Tenant) -> list[WebhookRead]:
        """The tenant's active webhooks, without their secrets."""
        found = await views()
        return [_webhook_read(h) for h in (await found.current(found.webhooks)).of_tenant(tenant)]

    @router.get("/deliveries")
    async def deliveries(
        tenant: Tenant, limit: LimitQ = 50, offset: OffsetQ = 0
    ) -> list[DeliveryRead]:
        """The tenant's delivery log, newest first: each alert sent to each webhook (the
        newest `HUBBUB_WEBHOOK_DELIVERIES_KEPT` of them)."""
        found = await views()
        log = await found.current(found.deliveries)
        return [_delivery_read(d) for d in log.newest(limit=limit, offset=offset, tenant=tenant)]

    @router.delete("/{webhook_id}", status_code=204, response_class=Response)
    async def remove(tenant: Tenant, webhook_id: str) -> None:
        """Stop sending the tenant's alerts to a webhook."""
        found = await views()
        hook = (await found.current(found.webhooks)).get(webhook_id)
        if hook is None or hook.tenant != tenant:
            raise HTTPException(404, f"no webhook {webhook_id!r}")
        await _append(ctx, msgspec.structs.replace(hook, active=False), hook.webhook)

    return router


def _check_room(count: int, most: int, what: str) -> None:
    """A 422 when a tenant has `most` of `what` already: every watch is checked and
    every webhook called for each alert, so neither may grow without bound."""
    if count >= most:
        setting = f"HUBBUB_{what.upper()}_PER_TENANT"
        raise HTTPException(
            422, f"the tenant has {count} {what}, the most it may have ({setting}): remove one"
        )


def _check_url(url: str, allowed: Sequence[Network]) -> None:
    """A 422 shaped as the model's own, saying why alerts may not go to `url`
    (`destinations.check_url`)."""
    try:
        check_url(url, allowed)
    except ValueError as error:
        raise RequestValidationError(
            [
                {"type": "value_error", "loc": ("body", "url"), "msg": f"Value error, {error}",
                 "input": url}
            ]
        ) from error  # fmt: skip


async def _append(ctx: RouteContext, change: WatchChanged | WebhookChanged, name: str) -> None:
    """Append a change to the watch or webhook `name`, stamped now, as the CLI does."""
    identity = f"{name}/{change.active}"
    now_us = ctx.clock.now_us()
    await ctx.event_log.append([stamped(change, identity, source="api", now_us=now_us)])


def _watch_read(watch: WatchChanged) -> WatchRead:
    return WatchRead(
        id=watch.watch, tenant=watch.tenant, kind=watch.kind, target=watch.target,
        sensitivity=watch.sensitivity,
    )  # fmt: skip


def _webhook_read(hook: WebhookChanged) -> WebhookRead:
    return WebhookRead(id=hook.webhook, tenant=hook.tenant, url=hook.url)


def _delivery_read(delivery: WebhookDelivered) -> DeliveryRead:
    return DeliveryRead(
        webhook=delivery.webhook, alert=delivery.alert, status=delivery.status,
        attempts=delivery.attempts, error=delivery.error,
        delivered_at=datetime.fromtimestamp(delivery.ts / 1_000_000, UTC),
    )  # fmt: skip
