"""Queues, recurring posts, drafts and a post's history on the publishing role, as the
gateway calls it (signed, naming a tenant and a key): what a person composing posts sees."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from hubbub.bootstrap import build_platform, open_request_signer
from hubbub.kernel.clock import FixedClock
from hubbub.publishing.service import extend_series
from hubbub.publishing.worker import Publisher, PublishPolicy
from hubbub.settings import Settings
from hubbub.web.app import create_app
from tests.e2e.test_publishing_media_api import Role

PARIS = ZoneInfo("Europe/Paris")
# Friday 26 March 2027, 10:00 in Paris: clocks go forward on Sunday the 28th.
NOW = datetime(2027, 3, 26, 10, 0, tzinfo=PARIS)
DAY_US = 86_400 * 1_000_000


class Composer(Role):
    """The role, called as one key (`author`) of a tenant."""

    async def as_(
        self, tenant: str, author: str, method: str, url: str, **options: Any
    ) -> httpx.Response:
        path = httpx.URL(url).path
        signed = self.signer.headers(method, path, tenant, author)
        headers = {k.decode(): v.decode() for k, v in signed}
        return await self.client.request(method, url, headers=headers, **options)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(now_us=int(NOW.timestamp() * 1_000_000))


@pytest.fixture
async def composer(tmp_path: Path, clock: FixedClock) -> AsyncIterator[Composer]:
    settings = Settings(data_dir=tmp_path / "data", publish_drafts_per_author=2)
    platform = await build_platform(settings, clock)
    app = create_app(platform, "publishing")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://publishing") as client:
        built = Composer(client, open_request_signer(settings))
        built.platform = platform  # type: ignore[attr-defined]
        yield built
    await platform.close()


async def a_channel(composer: Composer, tenant: str = "acme", zone: str = "Europe/Paris") -> str:
    made = await composer.call(
        tenant, "POST", "/v1/channels",
        json={"network": "bluesky", "account": f"news.{tenant}.example", "time_zone": zone,
              "service": "https://bsky.social", "app_password": "xxxx-xxxx-xxxx-xxxx"},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def local(due_us: int) -> str:
    return datetime.fromtimestamp(due_us / 1e6, PARIS).isoformat()


async def test_queued_posts_take_the_channels_next_free_slots_across_dst(
    composer: Composer,
) -> None:
    channel = await a_channel(composer)
    post = {"text": "Queued", "channels": [channel], "queue": True}
    refused = await composer.call("acme", "POST", "/v1/posts", json=post)
    assert refused.status_code == 422
    assert "has no queue" in refused.json()["detail"]

    wrong = await composer.call(
        "acme", "PUT", f"/v1/channels/{channel}/queue", json={"slots": "mon-fri 9:00,25:00"}
    )
    assert wrong.status_code == 422
    assert "column 14" in wrong.json()["detail"]
    kept = await composer.call(
        "acme", "PUT", f"/v1/channels/{channel}/queue", json={"slots": "Mon-Fri 09:00"}
    )
    assert kept.status_code == 200, kept.text
    assert kept.json()["slots"] == "mon-fri 09:00"
    assert kept.json()["upcoming"][:2] == ["2027-03-29T09:00:00+02:00", "2027-03-30T09:00:00+02:00"]
    shown = await composer.call("acme", "GET", f"/v1/channels/{channel}/queue")
    assert shown.json() == kept.json()
    assert (
        await composer.call("globex", "GET", f"/v1/channels/{channel}/queue")
    ).status_code == 404

    dues = []
    for _ in range(3):
        made = await composer.call("acme", "POST", "/v1/posts", json=post)
        assert made.status_code == 201, made.text
        dues += [local(job["due_us"]) for job in made.json()["jobs"]]
    assert dues == [
        "2027-03-29T09:00:00+02:00",
        "2027-03-30T09:00:00+02:00",
        "2027-03-31T09:00:00+02:00",
    ]  # fmt: skip  (9:00 in Paris the week the clocks change, each slot taken once)
    both = await composer.call("acme", "POST", "/v1/posts", json={**post, "at": "2027-04-01T09:00"})
    assert both.status_code == 422
    assert "leave out at and repeat" in both.json()["detail"]


async def test_a_recurring_post_is_made_ahead_occurrence_by_occurrence_until_cancelled(
    composer: Composer, clock: FixedClock
) -> None:
    channel = await a_channel(composer)
    made = await composer.call(
        "acme", "POST", "/v1/posts",
        json={"text": "Monday notes", "channels": [channel], "at": "2027-03-29T09:00",
              "repeat": "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0"},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    series = made.json()["series"]
    assert [local(job["due_us"]) for job in made.json()["jobs"]] == [
        "2027-03-29T09:00:00+02:00",
        "2027-04-05T09:00:00+02:00",
    ]  # fmt: skip  (this week's, and the first past the 7 days made ahead)
    publishing = await composer.platform.publishing()  # type: ignore[attr-defined]
    store = publishing.store
    horizon, now = 7 * DAY_US, clock.now_us()
    assert extend_series(store, now, horizon) == []  # a week ahead already
    # Three weeks pass on a sweeper's clock (no publisher runs on it), a sweep each day.
    later = FixedClock(now)
    sweeper = Publisher(store, {}, later, PublishPolicy(series_horizon_s=7 * 86_400.0))
    for _ in range(21):
        later.advance(86_400)
        await sweeper.sweep_once()
    jobs = (await composer.call("acme", "GET", "/v1/jobs")).json()
    dues = sorted(local(job["due_us"]) for job in jobs if job["series"] == series)
    assert dues == [f"2027-{day}T09:00:00+02:00" for day in
                    ("03-29", "04-05", "04-12", "04-19", "04-26")]  # fmt: skip
    assert len({job["idempotency_key"] for job in jobs}) == 5

    shown = await composer.call("acme", "GET", f"/v1/series/{series}")
    assert shown.status_code == 200
    assert shown.json()["rule"] == "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0"
    assert (await composer.call("globex", "DELETE", f"/v1/series/{series}")).status_code == 404
    stopped = await composer.call("acme", "DELETE", f"/v1/series/{series}")
    assert stopped.status_code == 204
    jobs = (await composer.call("acme", "GET", "/v1/jobs")).json()
    # No publisher ran on the sweeper's clock: it reports the occurrences it missed.
    states = [job["state"] for job in sorted(jobs, key=lambda j: j["due_us"])]
    assert states == ["missed"] * 3 + ["cancelled"] * 2
    assert extend_series(store, now + 60 * DAY_US, horizon) == []
    assert (await composer.call("acme", "GET", f"/v1/series/{series}")).json()["state"] == (
        "cancelled"
    )

    bad = await composer.call(
        "acme", "POST", "/v1/posts",
        json={"text": "x", "channels": [channel], "at": "2027-04-01T09:00",
              "repeat": "FREQ=MINUTELY"},
    )  # fmt: skip
    assert bad.status_code == 422
    assert "more often than hourly" in bad.json()["detail"]


DRAFT = "0123456789abcdef"


async def test_drafts_are_kept_as_typed_and_only_their_authors(
    composer: Composer, clock: FixedClock
) -> None:
    typed = {"text": "Half a thought", "channels": ["c1"], "thread": ["and more"],
             "at": "2027-04-01T09:00", "visibility": "unlisted"}  # fmt: skip
    kept = await composer.as_("acme", "ed", "PUT", f"/v1/drafts/{DRAFT}", json=typed)
    assert kept.status_code == 200, kept.text
    assert kept.json() | typed == kept.json()
    again = await composer.as_("acme", "ed", "PUT", f"/v1/drafts/{DRAFT}",
                               json={"text": "A whole thought"})  # fmt: skip
    assert again.json()["text"] == "A whole thought"
    other = "fedcba9876543210"
    clock.advance(1)
    await composer.as_("acme", "ed", "PUT", f"/v1/drafts/{other}", json={"text": "Newer"})
    listed = (await composer.as_("acme", "ed", "GET", "/v1/drafts")).json()
    assert [d["text"] for d in listed] == ["Newer", "A whole thought"]

    too_many = await composer.as_("acme", "ed", "PUT", "/v1/drafts/00000000000000ff",
                                  json={"text": "third"})  # fmt: skip
    assert too_many.status_code == 409
    assert "you keep 2 drafts" in too_many.json()["detail"]
    bad_id = await composer.as_("acme", "ed", "PUT", "/v1/drafts/NOT-HEX", json={"text": "x"})
    assert bad_id.status_code == 422
    huge = await composer.as_("acme", "ed", "PUT", f"/v1/drafts/{DRAFT}",
                              json={"text": "x" * 100_001})  # fmt: skip
    assert huge.status_code == 422

    for tenant, author in (("acme", "jo"), ("globex", "ed")):
        assert (await composer.as_(tenant, author, "GET", "/v1/drafts")).json() == []
        for method in ("GET", "DELETE"):
            reach = await composer.as_(tenant, author, method, f"/v1/drafts/{DRAFT}")
            assert reach.status_code == 404, (tenant, author, method)
    assert (await composer.as_("acme", "ed", "GET", f"/v1/drafts/{DRAFT}")).status_code == 200

    channel = await a_channel(composer)
    scheduled = await composer.as_(
        "acme", "ed", "POST", "/v1/posts",
        json={"text": "A whole thought", "channels": [channel], "at": "2027-04-01T09:00",
              "draft": DRAFT},
    )  # fmt: skip
    assert scheduled.status_code == 201, scheduled.text
    assert (await composer.as_("acme", "ed", "GET", f"/v1/drafts/{DRAFT}")).status_code == 404
    gone = await composer.as_("acme", "ed", "DELETE", f"/v1/drafts/{other}")
    assert gone.status_code == 204
    assert (await composer.as_("acme", "ed", "GET", "/v1/drafts")).json() == []


async def test_a_posts_history_shows_each_state_of_each_job(composer: Composer) -> None:
    channel = await a_channel(composer)
    made = await composer.call(
        "acme", "POST", "/v1/posts",
        json={"text": "Later", "channels": [channel], "at": "2027-04-01T09:00"},
    )  # fmt: skip
    post, (job,) = made.json()["post"], made.json()["jobs"]
    await composer.call("acme", "POST", f"/v1/jobs/{job['id']}/cancel")
    await composer.call("acme", "POST", f"/v1/jobs/{job['id']}/retry")
    history = await composer.call("acme", "GET", f"/v1/posts/{post}/history")
    assert history.status_code == 200
    assert [(h["state"], h["job"], h["channel"]) for h in history.json()] == [
        ("scheduled", job["id"], channel), ("cancelled", job["id"], channel),
        ("scheduled", job["id"], channel),
    ]  # fmt: skip
    assert history.json()[1]["error"] == "cancelled"
    assert set(history.json()[0]) == {"job", "channel", "state", "at_us", "error", "attempts"}
    assert (await composer.call("globex", "GET", f"/v1/posts/{post}/history")).status_code == 404
    shown = await composer.call("acme", "GET", f"/v1/posts/{post}")
    assert (shown.json()["text"], shown.json()["thread"], shown.json()["media"]) == (
        "Later",
        [],
        [],
    )
    assert (await composer.call("globex", "GET", f"/v1/posts/{post}")).status_code == 404
