"""`/v1/watches` and `/v1/webhooks`: a tenant's spike-alert watches, and the webhooks its
alerts are POSTed to, as `hubbub watch` and `hubbub webhook` manage them.

Changes are appended to the log's `control` topic (`WatchChanged`, `WebhookChanged`)
and reads fold that topic, so the API, the CLI and the alert monitor see the same
watches. A tenant sees and changes only its own: another tenant's watch or webhook is
answered 404, as one that does not exist, so ids do not leak across tenants.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Literal, get_type_hints

import msgspec
from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from hubbub.analytics.alerts import read_watches, watch_target
from hubbub.analytics.webhooks import check_url, read_deliveries, read_webhooks
from hubbub.bootstrap import Platform
from hubbub.gateway.ports import TENANT_HEADER
from hubbub.kernel.commands import short_id, stamped
from hubbub.kernel.events import WatchChanged, WebhookChanged, WebhookDelivered
from hubbub.kernel.validation import PlainText

# The kinds are read from the event, so a kind added there is accepted here unchanged.
WatchKind = get_type_hints(WatchChanged)["kind"]
Sensitivity = Literal["high", "medium", "low"]
LimitQ = Annotated[int, Query(ge=1, le=1000, description="At most this many.")]
OffsetQ = Annotated[int, Query(ge=0, description="Skip this many of the newest.")]
TenantOf = Callable[[Request], str]


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


class WatchRead(BaseModel):
    id: str
    tenant: str
    kind: str
    target: str
    sensitivity: str


class WebhookCreate(BaseModel):
    """A webhook to add; without a `secret`, one is made (and answered once)."""

    url: Annotated[str, StringConstraints(max_length=2048), AfterValidator(check_url)]
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


def build_router(platform: Platform) -> APIRouter:
    """The watch and webhook routes, acting for the tenant `tenant_of` names."""

    def tenant_of(request: Request) -> str:
        """The tenant a request acts for: the one the gateway authenticated (it sets
        `X-Hubbub-Tenant`, and drops any a client sent), else the configured one, for a
        role called directly on its internal port."""
        return request.headers.get(TENANT_HEADER) or platform.settings.tenant

    router = APIRouter()
    router.include_router(_watch_routes(platform, tenant_of))
    router.include_router(_webhook_routes(platform, tenant_of))
    return router


def _watch_routes(platform: Platform, tenant_of: TenantOf) -> APIRouter:
    router = APIRouter(prefix="/v1/watches", tags=["watches"])

    async def find(request: Request, watch_id: str) -> WatchChanged:
        found = (await read_watches(platform.event_log)).get(watch_id)
        if found is None or found.tenant != tenant_of(request):
            raise HTTPException(404, f"no watch {watch_id!r}")
        return found

    @router.post("", status_code=201)
    async def add(request: Request, body: WatchCreate) -> WatchRead:
        """Watch a hashtag, a page or a term for spikes; answers the watch, with its id."""
        tenant = tenant_of(request)
        sensitivity = body.sensitivity or platform.settings.spike_sensitivity
        change = WatchChanged(
            id="", key=tenant, ts=0, source="api", tenant=tenant, watch=short_id(),
            kind=body.kind, target=body.target, sensitivity=sensitivity,
        )  # fmt: skip
        await _append(platform, change, change.watch)
        return _watch_read(change)

    @router.get("")
    async def list_watches(request: Request) -> list[WatchRead]:
        """The tenant's active watches."""
        watches = (await read_watches(platform.event_log)).values()
        return [_watch_read(w) for w in watches if w.tenant == tenant_of(request)]

    @router.get("/{watch_id}")
    async def get(request: Request, watch_id: str) -> WatchRead:
        """One of the tenant's active watches."""
        return _watch_read(await find(request, watch_id))

    @router.delete("/{watch_id}", status_code=204, response_class=Response)
    async def remove(request: Request, watch_id: str) -> None:
        """Stop a watch: it raises no more alerts."""
        found = await find(request, watch_id)
        await _append(platform, msgspec.structs.replace(found, active=False), found.watch)

    return router


def _webhook_routes(platform: Platform, tenant_of: TenantOf) -> APIRouter:
    router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

    @router.post("", status_code=201)
    async def add(request: Request, body: WebhookCreate) -> WebhookSecretRead:
        """Add a webhook for the tenant's alerts. The answer holds the secret that signs
        them (`Hubbub-Signature`), and is the only one that does: keep it."""
        tenant = tenant_of(request)
        secret = body.secret or secrets.token_urlsafe(32)
        hook = WebhookChanged(
            id="", key=tenant, ts=0, source="api", tenant=tenant, webhook=short_id(),
            url=body.url, secret=platform.secret_box().seal(secret),
        )  # fmt: skip
        await _append(platform, hook, hook.webhook)
        return WebhookSecretRead(id=hook.webhook, tenant=tenant, url=hook.url, secret=secret)

    @router.get("")
    async def list_hooks(request: Request) -> list[WebhookRead]:
        """The tenant's active webhooks, without their secrets."""
        hooks = (await read_webhooks(platform.event_log)).values()
        return [_webhook_read(h) for h in hooks if h.tenant == tenant_of(request)]

    @router.get("/deliveries")
    async def deliveries(
        request: Request, limit: LimitQ = 50, offset: OffsetQ = 0
    ) -> list[DeliveryRead]:
        """The tenant's delivery log, newest first: each alert sent to each webhook."""
        found = await read_deliveries(
            platform.event_log, limit=limit, offset=offset, tenant=tenant_of(request)
        )
        return [_delivery_read(d) for d in found]

    @router.delete("/{webhook_id}", status_code=204, response_class=Response)
    async def remove(request: Request, webhook_id: str) -> None:
        """Stop sending the tenant's alerts to a webhook."""
        found = (await read_webhooks(platform.event_log)).get(webhook_id)
        if found is None or found.tenant != tenant_of(request):
            raise HTTPException(404, f"no webhook {webhook_id!r}")
        await _append(platform, msgspec.structs.replace(found, active=False), found.webhook)

    return router


async def _append(platform: Platform, change: WatchChanged | WebhookChanged, name: str) -> None:
    """Append a change to the watch or webhook `name`, stamped now, as the CLI does."""
    identity = f"{name}/{change.active}"
    now_us = platform.clock.now_us()
    await platform.event_log.append([stamped(change, identity, source="api", now_us=now_us)])


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
