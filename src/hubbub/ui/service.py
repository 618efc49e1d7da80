"""The web app's use cases: what a page needs, asked of the platform's API (`PlatformApi`)
with the person's session token. Each answers what the page shows, or `Problem` with a
sentence the person can act on."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from hubbub.kernel.clock import Clock
from hubbub.ui.ports import Answer, PlatformApi, Unreachable

SERIES = {"hashtag": "A hashtag", "page": "A page", "term": "A watched term"}
BUCKETS = ("minute", "hour", "day")
REPORTS = {
    "hashtags": "Top hashtags",
    "mentioned": "Most mentioned pages",
    "engaged": "Pages by engagement",
}


class Problem(Exception):
    """The platform refused or failed; `status` is its answer's, the message for people."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _part(value: str) -> str:
    """`value` as one path segment: what a person sent never reaches another route."""
    if value in ("", ".", ".."):
        raise Problem(404, "not found")
    return quote(value, safe="")


def _flags(platform: bool) -> str:
    return "/v1/platform/flags" if platform else "/v1/flags"


def _checked(answer: Answer) -> Any:
    if not answer.ok:
        raise Problem(answer.status, answer.detail())
    return answer.json()


@dataclass(frozen=True)
class Composed:
    """A post as the composer sends it: its text, the parts after it (a thread), its
    images (ids of kept media), its channels, when (empty: now), and the draft it was
    written in (which scheduling it removes)."""

    text: str
    channels: list[str]
    at: str | None = None
    thread: list[str] = field(default_factory=list)
    media: list[str] = field(default_factory=list)
    draft: str | None = None
    language: str | None = None
    spoiler: str | None = None
    """Mastodon's content warning."""
    visibility: str = "public"

    def body(self) -> dict[str, Any]:
        """As `POST /v1/posts` takes it; a blank part of a thread is no part."""
        body: dict[str, Any] = {
            "text": self.text, "channels": self.channels, "at": self.at or None,
            "media": self.media, "thread": [{"text": t} for t in self.thread if t.strip()],
            "language": self.language or None, "spoiler": self.spoiler or None,
            "visibility": self.visibility,
        }  # fmt: skip
        if self.draft:
            body["draft"] = self.draft
        return body


@dataclass(frozen=True)
class Window:
    """A report's window: whole days in the person's time zone, `start` to `end`
    inclusive, as the reports API wants it (UTC instants, end exclusive)."""

    start: date
    end: date
    zone: str

    @classmethod
    def last_days(cls, days: int, zone: str, today: date) -> Window:
        return cls(today - timedelta(days=days - 1), today, zone)

    def params(self) -> dict[str, str]:
        tz = ZoneInfo(self.zone)
        start = datetime.combine(self.start, datetime.min.time(), tz).astimezone(UTC)
        end = datetime.combine(self.end + timedelta(days=1), datetime.min.time(), tz)
        return {"start": start.isoformat(), "end": end.astimezone(UTC).isoformat()}


class KnownPeople:
    """Who each session is, as the API last said, for `ttl_s`: a page asks `/v1/me` once
    in that time rather than before each of its own calls (one hop less on every page).
    A session the API refused is not kept. What a page shows is still asked with the
    session, which the gateway checks each time: a session ended elsewhere gets no data
    from a remembered answer (its calls are refused, and the person signs in again)."""

    def __init__(self, console: Console, clock: Clock, ttl_s: float, most: int = 10_000) -> None:
        self._console = console
        self._clock = clock
        self._ttl_s = ttl_s
        self._most = most
        self._known: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()

    async def of(self, session: str) -> dict[str, Any] | None:
        now = self._clock.monotonic_s()
        found = self._known.get(session)
        if found is not None and found[0] > now:
            return found[1]
        me = await self._console.me(session)
        if me is None:
            self._known.pop(session, None)
            return None
        self._known[session] = (now + self._ttl_s, me)
        self._known.move_to_end(session)
        while len(self._known) > self._most:
            self._known.popitem(last=False)
        return me

    def forget(self, session: str) -> None:
        """Ask the API again next time (the person changed, or signed out)."""
        self._known.pop(session, None)


@dataclass(frozen=True)
class Console:
    """What the pages ask of the platform."""

    api: PlatformApi

    async def sign_in(self, email: str, password: str) -> str:
        answer = await self.api.call(
            "POST", "/v1/sessions", json={"email": email, "password": password}
        )
        return str(_checked(answer)["token"])

    async def sign_out_everywhere(self, token: str) -> None:
        _checked(await self.api.call("DELETE", "/v1/sessions", token=token))

    async def me(self, token: str) -> dict[str, Any] | None:
        """The signed-in person, or None when the session is no longer valid."""
        answer = await self.api.call("GET", "/v1/me", token=token)
        if answer.status in (401, 403):
            return None
        return dict(_checked(answer))

    async def status(self, token: str) -> dict[str, Any]:
        """How the platform keeps up: the ingest rate, and each role's state (ok,
        degraded, down) and lag behind the log; every role down when it cannot be asked."""
        try:
            answer = await self.api.call("GET", "/v1/platform/status", token=token)
        except Unreachable:
            return {"ingest_per_s": None, "topics": {}, "roles": {"gateway": {"status": "down"}}}
        found = answer.json() if answer.ok else None
        return dict(found) if isinstance(found, dict) else {"ingest_per_s": None, "roles": {}}

    async def tenant(self, token: str) -> dict[str, Any]:
        return dict(_checked(await self.api.call("GET", "/v1/tenant", token=token)))

    async def set_profile(self, token: str, time_zone: str, locale: str) -> None:
        body = {"time_zone": time_zone, "locale": locale}
        _checked(await self.api.call("PUT", "/v1/me", token=token, json=body))

    async def suggest(self, token: str, typed: str, limit: int = 8) -> bytes:
        """The mentions service's answer for what was typed after `@`, as it is (JSON)."""
        answer = await self.api.call(
            "GET", "/v1/mentions", token=token, params={"q": typed, "limit": limit}
        )
        _checked(answer)
        return answer.body

    async def top(self, token: str, what: str, window: Window, limit: int = 20) -> list[Any]:
        params = {**window.params(), "limit": limit}
        return list(
            _checked(
                await self.api.call(
                    "GET", f"/v1/reports/top/{_part(what)}", token=token, params=params
                )
            )
        )

    async def series(
        self, token: str, kind: str, key: str, bucket: str, window: Window, csv: bool = False
    ) -> Any:
        """A page's, hashtag's or watched term's counts per bucket, in the window's zone."""
        params = {**window.params(), "bucket": bucket, "tz": window.zone}
        if csv:
            params["format"] = "csv"
        path = f"/v1/reports/series/{_part(kind)}/{_part(key)}"
        answer = await self.api.call("GET", path, token=token, params=params)
        if not answer.ok:
            raise Problem(answer.status, answer.detail())
        return answer.body if csv else answer.json()

    async def page_summary(self, token: str, page: str, window: Window) -> dict[str, Any]:
        """A page's posts, mentions and engagement received over the window."""
        path = f"/v1/reports/pages/{_part(page)}/summary"
        answer = await self.api.call("GET", path, token=token, params=window.params())
        (row,) = _checked(answer)
        return dict(row)

    async def page_summary_csv(self, token: str, page: str, window: Window) -> bytes:
        path = f"/v1/reports/pages/{_part(page)}/summary"
        params = {**window.params(), "format": "csv"}
        answer = await self.api.call("GET", path, token=token, params=params)
        if not answer.ok:
            raise Problem(answer.status, answer.detail())
        return answer.body

    async def top_csv(self, token: str, what: str, window: Window) -> bytes:
        params = {**window.params(), "limit": 100, "format": "csv"}
        answer = await self.api.call(
            "GET", f"/v1/reports/top/{_part(what)}", token=token, params=params
        )
        if not answer.ok:
            raise Problem(answer.status, answer.detail())
        return answer.body

    async def watches(self, token: str) -> list[Any]:
        return list(_checked(await self.api.call("GET", "/v1/watches", token=token)))

    async def add_watch(self, token: str, kind: str, target: str, sensitivity: str) -> None:
        body = {"kind": kind, "target": target, "sensitivity": sensitivity}
        _checked(await self.api.call("POST", "/v1/watches", token=token, json=body))

    async def change_watch(self, token: str, watch: str, sensitivity: str) -> None:
        body = {"sensitivity": sensitivity}
        path = f"/v1/watches/{_part(watch)}"
        _checked(await self.api.call("PATCH", path, token=token, json=body))

    async def add_webhook(self, token: str, url: str) -> dict[str, Any]:
        """A new webhook, with its signing secret (answered this once)."""
        answer = await self.api.call("POST", "/v1/webhooks", token=token, json={"url": url})
        return dict(_checked(answer))

    async def remove_webhook(self, token: str, webhook: str) -> None:
        _checked(await self.api.call("DELETE", f"/v1/webhooks/{_part(webhook)}", token=token))

    async def remove_watch(self, token: str, watch: str) -> None:
        _checked(await self.api.call("DELETE", f"/v1/watches/{_part(watch)}", token=token))

    async def alerts(self, token: str, limit: int = 20) -> list[Any]:
        answer = await self.api.call("GET", "/v1/alerts", token=token, params={"limit": limit})
        return list(_checked(answer))

    async def webhooks(self, token: str) -> list[Any]:
        return list(_checked(await self.api.call("GET", "/v1/webhooks", token=token)))

    async def deliveries(self, token: str, limit: int = 20) -> list[Any]:
        answer = await self.api.call(
            "GET", "/v1/webhooks/deliveries", token=token, params={"limit": limit}
        )
        return list(_checked(answer))

    async def connectors(self, token: str) -> list[Any]:
        return list(_checked(await self.api.call("GET", "/v1/connectors", token=token)))

    async def keep_connector_token(
        self, token: str, connector: str, account: str, secret: str
    ) -> None:
        path = f"/v1/connectors/{_part(connector)}/{_part(account)}"
        _checked(await self.api.call("PUT", path, token=token, json={"token": secret}))

    async def forget_connector_token(self, token: str, connector: str, account: str) -> None:
        path = f"/v1/connectors/{_part(connector)}/{_part(account)}"
        _checked(await self.api.call("DELETE", path, token=token))

    async def flags(self, token: str, platform: bool = False) -> list[Any]:
        """The workspace's flags, or (`platform`, the operator's) the platform's."""
        return list(_checked(await self.api.call("GET", _flags(platform), token=token)))

    async def set_flag(
        self, token: str, name: str, enabled: bool, percent: float, description: str,
        platform: bool = False,
    ) -> None:  # fmt: skip
        body = {"enabled": enabled, "percent": percent, "description": description}
        path = f"{_flags(platform)}/{_part(name)}"
        _checked(await self.api.call("PUT", path, token=token, json=body))

    async def remove_flag(self, token: str, name: str, platform: bool = False) -> None:
        path = f"{_flags(platform)}/{_part(name)}"
        _checked(await self.api.call("DELETE", path, token=token))

    async def users(self, token: str) -> list[Any]:
        return list(_checked(await self.api.call("GET", "/v1/users", token=token)))

    async def set_role(self, token: str, user: str, role: str) -> dict[str, Any]:
        path = f"/v1/users/{_part(user)}"
        return dict(_checked(await self.api.call("PATCH", path, token=token, json={"role": role})))

    async def remove_user(self, token: str, user: str) -> dict[str, Any]:
        """Remove a person from the workspace; answers them as they were."""
        path = f"/v1/users/{_part(user)}"
        return dict(_checked(await self.api.call("DELETE", path, token=token)))

    async def invites(self, token: str) -> list[Any]:
        return list(_checked(await self.api.call("GET", "/v1/invites", token=token)))

    async def invite(self, token: str, email: str, role: str) -> dict[str, Any]:
        body = {"email": email, "role": role}
        return dict(_checked(await self.api.call("POST", "/v1/invites", token=token, json=body)))

    async def invitation(self, link: str) -> dict[str, Any]:
        return dict(_checked(await self.api.call("GET", f"/v1/invitations/{_part(link)}")))

    async def accept(self, link: str, password: str) -> str:
        answer = await self.api.call(
            "POST", f"/v1/invitations/{_part(link)}/accept", json={"password": password}
        )
        return str(_checked(answer)["token"])

    async def channels(self, token: str) -> list[Any]:
        return list(_checked(await self.api.call("GET", "/v1/channels", token=token)))

    async def jobs(self, token: str, limit: int = 50) -> list[Any]:
        answer = await self.api.call("GET", "/v1/jobs", token=token, params={"limit": limit})
        return list(_checked(answer))

    async def schedule(self, token: str, post: Composed) -> dict[str, Any]:
        """Schedule the post; the draft it was written in, if any, goes with it."""
        answer = await self.api.call("POST", "/v1/posts", token=token, json=post.body())
        return dict(_checked(answer))

    async def post(self, token: str, post: str) -> dict[str, Any] | None:
        """The post (its text, parts and images); None where the API does not say posts."""
        answer = await self.api.call("GET", f"/v1/posts/{_part(post)}", token=token)
        if answer.status in (404, 405):
            return None
        return dict(_checked(answer))

    async def history(self, token: str, post: str) -> list[Any]:
        """Every change of the post's jobs (one per channel), oldest first."""
        path = f"/v1/posts/{_part(post)}/history"
        return list(_checked(await self.api.call("GET", path, token=token)))

    async def add_media(self, token: str, image: bytes, alt: str | None) -> dict[str, Any]:
        """Keep an image for a post, with its alt text; answers its id, type and size."""
        params = {"alt": alt} if alt else None
        answer = await self.api.call("POST", "/v1/media", token=token, params=params, content=image)
        return dict(_checked(answer))

    async def media(self, token: str, media: str) -> dict[str, Any]:
        return dict(_checked(await self.api.call("GET", f"/v1/media/{_part(media)}", token=token)))

    async def drafts(self, token: str) -> list[Any]:
        """The person's drafts, newest first."""
        return list(_checked(await self.api.call("GET", "/v1/drafts", token=token)))

    async def draft(self, token: str, draft: str) -> dict[str, Any]:
        path = f"/v1/drafts/{_part(draft)}"
        return dict(_checked(await self.api.call("GET", path, token=token)))

    async def save_draft(self, token: str, draft: str, body: dict[str, Any]) -> dict[str, Any]:
        """Keep the draft as it is now (made, or replaced: the id is the composer's)."""
        path = f"/v1/drafts/{_part(draft)}"
        return dict(_checked(await self.api.call("PUT", path, token=token, json=body)))

    async def discard_draft(self, token: str, draft: str) -> None:
        _checked(await self.api.call("DELETE", f"/v1/drafts/{_part(draft)}", token=token))

    async def job_action(self, token: str, job: str, action: str) -> dict[str, Any]:
        """`retry` or `cancel` a publish job."""
        path = f"/v1/jobs/{_part(job)}/{_part(action)}"
        return dict(_checked(await self.api.call("POST", path, token=token)))

    async def keys(self, token: str) -> list[Any]:
        return list(_checked(await self.api.call("GET", "/v1/keys", token=token)))

    async def create_key(self, token: str, name: str, role: str) -> dict[str, Any]:
        body = {"name": name, "role": role}
        return dict(_checked(await self.api.call("POST", "/v1/keys", token=token, json=body)))

    async def revoke_key(self, token: str, key: str) -> None:
        _checked(await self.api.call("DELETE", f"/v1/keys/{_part(key)}", token=token))

    # The operator's: the platform's tenants, flags and strangler-fig routes.

    async def sign_in_operator(self, operator_token: str) -> str:
        answer = await self.api.call(
            "POST", "/v1/sessions/operator", json={"token": operator_token}
        )
        return str(_checked(answer)["token"])

    async def tenants(self, token: str) -> list[Any]:
        return list(_checked(await self.api.call("GET", "/v1/tenants", token=token)))

    async def create_tenant(self, token: str, name: str) -> dict[str, Any]:
        """A new tenant and its first owner key (its token answered this once)."""
        answer = await self.api.call("POST", "/v1/tenants", token=token, json={"name": name})
        return dict(_checked(answer))

    async def routes(self, token: str) -> list[Any]:
        return list(_checked(await self.api.call("GET", "/v1/platform/routes", token=token)))

    async def set_route(
        self, token: str, prefix: str, target: str, percent: float, shadow: bool
    ) -> None:
        body = {"prefix": prefix, "target": target, "percent": percent, "shadow": shadow}
        _checked(await self.api.call("PUT", "/v1/platform/routes", token=token, json=body))

    async def remove_route(self, token: str, prefix: str) -> None:
        params = {"prefix": prefix}
        answer = await self.api.call("DELETE", "/v1/platform/routes", token=token, params=params)
        _checked(answer)
