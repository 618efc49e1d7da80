"""Listening in a real Chromium, through the gateway, with two workspaces: streams added
from the page become columns side by side, a post that matches one arrives live at the
top of its column within seconds (its text as text, never markup; its time in the
person's zone), and leaves it when it is deleted; a query that does not parse is
marked where it goes wrong; "test" shows what a query would have matched in the last
hour; a stream's stored matches are searched, filtered and paged; another workspace's
stream is a 404 on every page and never streams; the page's live stream, read by a
real SSE client, resumes after `Last-Event-ID` losing and repeating nothing. The inbox
counts its unread items live and puts a new one on top; its items are assigned, tagged,
closed and answered (the reply posted to Bluesky's own PDS as an answer to the post),
and another workspace's items are neither shown nor changed. axe-core checks each page.
Screenshots go to `test-artifacts/screens/`."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Locator, Page, expect

from hubbub.kernel.events import ChannelChanged, PostDeleted, PostPublished
from hubbub.ui.listening import EventReader
from tests.browser.test_web_app import AXE, PASSWORD, browser, nav, person, screens, signed_in
from tests.conftest import until
from tests.support.browser import CHROMIUM
from tests.support.pds import bearer, local_pds, xrpc_result
from tests.support.stack import Stack, auth, start_stack

__all__ = ["browser"]  # the fixture, shared with the other browser tests
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no browser at {CHROMIUM}")
HOSTILE = "coffee <img src=x onerror=alert(1)> <script>alert(2)</script>"
TOKYO = ZoneInfo("Asia/Tokyo")
POST = "app.bsky.feed.post"
FAST = {"listening_live_poll_s": 0.05, "listening_heartbeat_s": 1.0,
        "listening_interval_s": 0.02, "listening_stream_s": 30.0,
        "notifications_heartbeat_s": 1.0}  # fmt: skip
"""Quick live streams, whose heartbeats also let a stream left by a closed page end soon."""
AXE_SOURCE = AXE.read_text() if AXE.exists() else ""


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    built, resources = await start_stack(tmp_path, FAST)
    async with resources:
        yield built


@dataclass
class Workspaces:
    """Two workspaces, Acme (ann, signed in, in Tokyo) and Globex (eve)."""

    stack: Stack
    acme: dict[str, str]
    globex: dict[str, str]
    context: BrowserContext
    page: Page
    dialogs: list[str]


@pytest.fixture
async def spaces(stack: Stack, browser: Browser) -> AsyncIterator[Workspaces]:
    acme, globex = await stack.tenant("Acme"), await stack.tenant("Globex")
    await person(stack, acme, "ann@acme.example", "editor")
    await person(stack, globex, "eve@globex.example", "editor")
    context, page = await signed_in(browser, stack, "ann@acme.example")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    await page.goto("/settings")
    await page.get_by_label("Time zone").fill("Asia/Tokyo")
    await page.get_by_role("button", name="Save").first.click()
    yield Workspaces(stack, acme, globex, context, page, dialogs)
    await context.close()


def now_us() -> int:
    return time.time_ns() // 1000


async def publish(stack: Stack, n: int, text: str, lang: str = "en", at: int = 0) -> str:
    """A post of the firehose (now, or at `at`), by @brew; answers its URI."""
    uri = f"at://did:plc:brew/app.bsky.feed.post/{n}"
    at = at or now_us()
    await stack.platform.event_log.append([
        PostPublished(id=f"post-{n}", key="did:plc:brew", ts=at, source="test", post=uri,
                      author="did:plc:brew", text=text, langs=[lang], created_at=at)
    ])  # fmt: skip
    return uri


async def add_stream(page: Page, name: str, query: str) -> None:
    adder = page.locator("details.add-stream")
    if await adder.get_attribute("open") is None:
        await adder.locator("summary").click()
    await adder.get_by_label("Name").fill(name)
    await adder.get_by_label("Query", exact=True).fill(query)
    await adder.get_by_role("button", name="Add the stream").click()


def column(page: Page, name: str) -> Locator:
    return page.locator("section.column", has=page.get_by_role("heading", name=name))


async def stream_id(stack: Stack, owner: dict[str, str], name: str) -> str:
    found = await stack.client.get("/v1/streams", headers=auth(owner["token"]))
    return str(next(s["id"] for s in found.json()["streams"] if s["name"] == name))


async def violations(page: Page) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now (its CSP is
    passed by: the script is added through the DevTools protocol)."""
    await page.evaluate(AXE_SOURCE)
    found: list[str] = await page.evaluate(
        """async () => (await axe.run()).violations
             .filter(v => v.impact === "serious" || v.impact === "critical")
             .map(v => `${v.id}: ${v.help} (${v.nodes.length})`)"""
    )
    return found


async def test_a_matching_post_arrives_live_in_its_column_as_text_and_leaves_when_deleted(
    spaces: Workspaces,
) -> None:
    stack, page = spaces.stack, spaces.page
    await nav(page, "Listening").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Listening")
    await add_stream(page, "Coffee", "coffee OR espresso")
    await add_stream(page, "Tea", "tea AND NOT coffee")
    await expect(page.locator("section.column")).to_have_count(2)
    rivals = await stack.client.post(
        "/v1/streams", json={"name": "Rivals", "query": "coffee"},
        headers=auth(spaces.globex["token"]),
    )  # fmt: skip
    assert rivals.status_code == 201, rivals.text
    board = page.locator("#listening-board")
    await expect(board).to_have_attribute("data-live", "true", timeout=10_000)

    coffee, tea = column(page, "Coffee"), column(page, "Tea")
    started = time.monotonic()
    created = now_us()
    uri = await publish(stack, 1, HOSTILE, "en", created)
    arrived = coffee.locator("ol.posts > li")
    await expect(arrived).to_have_count(1, timeout=10_000)
    took_s = time.monotonic() - started
    assert took_s < 5, f"the match took {took_s:.2f} s to show"
    await expect(arrived.locator(".text")).to_have_text(HOSTILE)  # as text, not markup
    assert await coffee.locator("ol.posts img, ol.posts script").count() == 0
    await expect(arrived.locator(".author")).to_have_text("did:plc:brew")
    await expect(arrived.locator(".langs")).to_contain_text("en")
    tokyo = datetime.fromtimestamp(created / 1e6, UTC).astimezone(TOKYO)
    await expect(arrived.locator("time")).to_contain_text(tokyo.strftime("%-I:%M:%S"))
    await expect(arrived.get_by_role("link")).to_have_attribute(
        "href", "https://bsky.app/profile/did:plc:brew/post/1"
    )
    await expect(tea.locator("ol.posts > li")).to_have_count(0)

    await publish(stack, 2, "tea time")
    await publish(stack, 3, "an espresso, then another")
    await expect(tea.locator("ol.posts > li")).to_have_count(1, timeout=10_000)
    await expect(arrived).to_have_count(2, timeout=10_000)
    await expect(arrived.first.locator(".text")).to_have_text("an espresso, then another")
    await screens(page, "listening")

    await stack.platform.event_log.append([
        PostDeleted(id="deleted-1", key="did:plc:brew", ts=now_us(), source="test", post=uri,
                    author="did:plc:brew")
    ])  # fmt: skip
    await expect(arrived).to_have_count(1, timeout=10_000)  # withdrawn, live
    await expect(arrived.locator(".text")).to_have_text("an espresso, then another")
    await page.reload()  # the column from the stored matches, live from the newest on
    arrived = column(page, "Coffee").locator("ol.posts > li")
    await expect(arrived).to_have_count(1)
    await expect(board).to_have_attribute("data-live", "true", timeout=10_000)
    await publish(stack, 4, "espresso again")
    await expect(arrived).to_have_count(2, timeout=10_000)
    await expect(arrived.first.locator(".text")).to_have_text("espresso again")
    assert spaces.dialogs == []


async def test_another_workspaces_stream_is_not_found_and_never_streams(
    spaces: Workspaces, browser: Browser
) -> None:
    stack, page = spaces.stack, spaces.page
    made = await stack.client.post(
        "/v1/streams", json={"name": "Globex secret", "query": "coffee"},
        headers=auth(spaces.globex["token"]),
    )  # fmt: skip
    theirs = made.json()["id"]
    await publish(stack, 1, "coffee for globex")

    async def stored() -> bool:
        found = await stack.client.get(f"/v1/streams/{theirs}/matches",
                                       headers=auth(spaces.globex["token"]))  # fmt: skip
        return len(found.json()["matches"]) == 1

    await until(stored)
    answer = await page.goto(f"/listening/{theirs}")
    assert answer is not None
    assert answer.status == 404
    await page.goto("/listening")
    await expect(page.locator("main")).not_to_contain_text("Globex secret")
    live = await page.request.get(f"/listening/live?stream={theirs}")
    assert live.status == 204  # refused: nothing streams
    removed = await page.evaluate(
        """async ([id, token]) => {
            const form = new FormData();
            form.append("csrf", token);
            const path = `/listening/streams/${id}/remove`;
            return (await fetch(path, {method: "POST", body: form})).status;
        }""",
        [theirs, await page.locator("input[name=csrf]").first.input_value()],
    )
    assert removed == 404
    still = await stack.client.get(f"/v1/streams/{theirs}", headers=auth(spaces.globex["token"]))
    assert still.status_code == 200
    forged = await page.evaluate(
        """async () => {
            const form = new FormData();
            form.append("name", "forged");
            form.append("query", "x");
            form.append("csrf", "not-the-token");
            return (await fetch("/listening/streams", {method: "POST", body: form})).status;
        }"""
    )
    assert forged == 403
    mine = await stack.client.get("/v1/streams", headers=auth(spaces.acme["token"]))
    assert mine.json()["streams"] == []


async def test_a_query_error_is_marked_where_it_is_and_test_shows_the_last_hour(
    spaces: Workspaces,
) -> None:
    stack, page = spaces.stack, spaces.page
    await publish(stack, 1, "a flat white coffee, please", "en")
    await publish(stack, 2, "coffee beans", "en")
    await publish(stack, 3, "<b>latte</b> coffee", "it", now_us() - 2 * 3_600_000_000)
    await page.goto("/listening")
    await add_stream(page, "Drinks", "coffee AND")
    alert = page.locator(".query-error")
    await expect(alert).to_contain_text("expected")
    query = page.get_by_label("Query", exact=True)
    await expect(query).to_have_attribute("aria-invalid", "true")
    await expect(query).to_be_focused()
    assert await page.evaluate("document.activeElement.selectionStart") == 10
    await expect(alert.locator("mark")).to_have_count(1)
    await expect(page.get_by_label("Name")).to_have_value("Drinks")  # the form as it was sent
    await screens(page, "listening-query-error")

    await query.fill('coffee AND (latte OR "flat white")')
    shown_at = page.url
    await page.get_by_role("button", name="Test it on the last hour").click()
    results = page.locator("#test-results")
    await expect(results.locator("li.post")).to_have_count(1)  # the older latte is not
    await expect(results.locator(".text")).to_have_text("a flat white coffee, please")
    assert page.url == shown_at  # swapped in by htmx: no navigation
    await page.get_by_role("button", name="Add the stream").click()
    await expect(column(page, "Drinks")).to_be_visible()
    saved = await stack.client.get("/v1/streams", headers=auth(spaces.acme["token"]))
    assert [s["query"] for s in saved.json()["streams"]] == ['coffee AND (latte OR "flat white")']

    drinks = column(page, "Drinks")
    await drinks.get_by_text("Edit").click()
    await drinks.get_by_label("Query", exact=True).fill("coffee NEAR/ latte")
    await drinks.get_by_role("button", name="Save").click()
    drinks = column(page, "Drinks")  # the board again, this column's form open with why
    await expect(drinks.locator(".query-error")).to_contain_text("expected")
    await drinks.get_by_label("Name").fill("Hot drinks")
    await drinks.get_by_label("Query", exact=True).fill("coffee NEAR/3 latte")
    await drinks.get_by_role("button", name="Save").click()
    hot = column(page, "Hot drinks")
    await expect(hot.locator(".query-text")).to_have_text("coffee NEAR/3 latte")
    await hot.get_by_text("Edit").click()
    await hot.get_by_role("button", name="Remove Hot drinks").click()
    await expect(page.locator("section.column")).to_have_count(0)
    saved = await stack.client.get("/v1/streams", headers=auth(spaces.acme["token"]))
    assert saved.json()["streams"] == []


async def test_a_streams_matches_are_searched_filtered_and_paged(spaces: Workspaces) -> None:
    stack, page = spaces.stack, spaces.page
    made = await stack.client.post(
        "/v1/streams", json={"name": "Espresso", "query": "espresso"},
        headers=auth(spaces.acme["token"]),
    )  # fmt: skip
    stream = made.json()["id"]
    start = now_us()
    for n in range(55):
        lang = "fr" if n % 5 == 0 else "en"
        word = " ristretto" if n == 7 else ""
        await publish(stack, n, f"espresso shot {n}{word}", lang, start + n)

    async def stored() -> bool:
        found = await stack.client.get(f"/v1/streams/{stream}/matches?limit=200",
                                       headers=auth(spaces.acme["token"]))  # fmt: skip
        return len(found.json()["matches"]) == 55

    await until(stored)
    await page.goto("/listening")
    await column(page, "Espresso").get_by_role("link", name="Espresso").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Espresso")
    shown = page.locator("ol.stored > li")
    await expect(shown).to_have_count(50)
    await expect(shown.first.locator(".text")).to_have_text("espresso shot 54")
    await page.get_by_role("link", name="Older matches").click()
    await expect(shown).to_have_count(5)
    await expect(shown.last.locator(".text")).to_have_text("espresso shot 0")
    await page.get_by_role("link", name="Newest").click()
    await expect(shown).to_have_count(50)

    await page.get_by_label("Search", exact=True).fill("ristretto")
    await page.get_by_role("button", name="Search").click()
    await expect(shown).to_have_count(1)
    await expect(shown.locator(".text")).to_have_text("espresso shot 7 ristretto")
    await page.get_by_label("Search", exact=True).fill("")
    await page.get_by_label("Language").fill("fr")
    await page.get_by_role("button", name="Search").click()
    await expect(shown).to_have_count(11)
    await expect(shown.locator(".langs").first).to_contain_text("fr")
    tomorrow = (datetime.now(TOKYO) + timedelta(days=1)).date().isoformat()
    await page.get_by_label("From").fill(tomorrow)
    await page.get_by_role("button", name="Search").click()
    await expect(shown).to_have_count(0)
    await expect(page.get_by_text("No matches for this search")).to_be_visible()
    today = datetime.now(TOKYO).date().isoformat()
    await page.get_by_label("From").fill(today)
    await page.get_by_label("To").fill(today)
    await page.get_by_role("button", name="Search").click()
    await expect(shown).to_have_count(11)
    await screens(page, "listening-stream")


async def test_the_live_stream_resumes_after_the_last_event_id_losing_and_repeating_nothing(
    spaces: Workspaces,
) -> None:
    stack = spaces.stack
    for name, query in (("Beans", "beans"), ("Cups", "cups")):
        made = await stack.client.post("/v1/streams", json={"name": name, "query": query},
                                        headers=auth(spaces.acme["token"]))  # fmt: skip
        assert made.status_code == 201, made.text
    beans = await stream_id(stack, spaces.acme, "Beans")
    cups = await stream_id(stack, spaces.acme, "Cups")
    session = await stack.client.post(
        "/v1/sessions", json={"email": "ann@acme.example", "password": PASSWORD}
    )
    cookies = {"hubbub_session": session.json()["token"]}
    params = [("stream", beans), ("stream", cups)]

    async with httpx.AsyncClient(base_url=stack.url, cookies=cookies, timeout=20) as client:
        first = await read_events(client, params, {}, 3, lambda: publish_many(stack, 1, 4))
        # Gone after the third: the rest, and what comes while away, arrive on resuming.
        await publish_many(stack, 5, 6)
        again = await read_events(client, params, {"last-event-id": first.last_id}, 3)
    both = first.matches + again.matches
    texts = [e["match"]["text"] for e in both]
    assert sorted(texts) == sorted(f"{'beans' if n % 2 else 'cups'} {n}" for n in range(1, 7))
    for stream, word in ((beans, "beans"), (cups, "cups")):  # each stream in its order
        said = [int(e["match"]["text"].split()[1]) for e in both if e["stream"] == stream]
        assert said == sorted(said), word
        assert all(e["match"]["text"].startswith(word) for e in both if e["stream"] == stream)


@dataclass
class Read:
    matches: list[dict[str, Any]]
    last_id: str


async def publish_many(stack: Stack, first: int, last: int) -> None:
    for n in range(first, last + 1):
        await publish(stack, n, f"{'beans' if n % 2 else 'cups'} {n}")


async def read_events(
    client: httpx.AsyncClient,
    params: list[tuple[str, str]],
    headers: dict[str, str],
    wanted: int,
    then: Callable[[], Awaitable[None]] | None = None,
) -> Read:
    """The first `wanted` matches of the page's live stream, and the id of the last (the
    stream is left then, as a page that goes away leaves it)."""
    found: list[dict[str, Any]] = []
    reader = EventReader()
    async with client.stream("GET", "/listening/live", params=params, headers=headers) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        if then is not None:
            await then()
        async for chunk in answer.aiter_bytes():
            for event in reader.feed(chunk):
                if event.event == "match":
                    found.append(json.loads(event.data))
                    if len(found) == wanted:
                        assert event.id
                        return Read(found, event.id)
    raise AssertionError(f"the stream ended after {len(found)} matches")


async def test_the_listening_pages_pass_axe(spaces: Workspaces) -> None:
    if not AXE.exists():
        pytest.skip(f"axe-core is not at {AXE}: `make test` fetches it")
    stack, page = spaces.stack, spaces.page
    made = await stack.client.post("/v1/streams", json={"name": "Coffee", "query": "coffee"},
                                   headers=auth(spaces.acme["token"]))  # fmt: skip
    await publish(stack, 1, HOSTILE)

    async def stored() -> bool:
        found = await stack.client.get(f"/v1/streams/{made.json()['id']}/matches",
                                       headers=auth(spaces.acme["token"]))  # fmt: skip
        return len(found.json()["matches"]) == 1

    await until(stored)
    found: dict[str, list[str]] = {}
    await page.goto("/listening")
    found["/listening"] = await violations(page)
    await add_stream(page, "Broken", "coffee OR (")
    await expect(page.locator(".query-error")).to_be_visible()
    found["/listening (a query error)"] = await violations(page)
    await page.goto(f"/listening/{made.json()['id']}")
    found["/listening/{id}"] = await violations(page)
    assert found == {path: [] for path in found}


async def connect_channel(stack: Stack, tenant: str, page: str) -> None:
    """A channel of the tenant's, as publishing tells the log of it: posts that mention
    `page` reach the tenant's inbox."""
    await stack.platform.event_log.append([
        ChannelChanged(id=f"channel-{tenant}", key=tenant, ts=now_us(), source="test",
                       tenant=tenant, channel=f"c-{tenant}", network="bluesky",
                       account=f"{tenant}.bsky.social", page=page)
    ])  # fmt: skip


async def mention(stack: Stack, n: int, text: str, page: str) -> str:
    uri = f"at://did:plc:fan/app.bsky.feed.post/{n}"
    at = now_us()
    await stack.platform.event_log.append([
        PostPublished(id=f"mention-{n}", key="did:plc:fan", ts=at, source="test", post=uri,
                      author="did:plc:fan", text=text, langs=["en"], mentions=[page],
                      created_at=at)
    ])  # fmt: skip
    return uri


async def test_the_inbox_counts_unread_live_and_its_items_are_assigned_tagged_and_closed(
    spaces: Workspaces, browser: Browser
) -> None:
    stack, page = spaces.stack, spaces.page
    await person(stack, spaces.acme, "bo@acme.example", "viewer")
    await connect_channel(stack, spaces.acme["id"], "did:plc:acme")
    await connect_channel(stack, spaces.globex["id"], "did:plc:globex")
    await nav(page, "Inbox").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Inbox")
    unread = page.locator("#inbox-unread")
    await expect(unread).to_have_text("0")
    await expect(page.locator("#inbox-empty")).to_be_visible()
    await page.wait_for_timeout(1000)  # the live stream is open, at the head

    hostile = "@acme <img src=x onerror=alert(1)> do you ship to Lyon?"
    await mention(stack, 1, hostile, "did:plc:acme")
    await mention(stack, 2, "@globex only", "did:plc:globex")
    items = page.locator("#inbox-items > li")
    await expect(unread).to_have_text("1", timeout=10_000)  # live
    await expect(items).to_have_count(1, timeout=10_000)  # put on top, no reload
    item = items.first
    await expect(item.locator(".text")).to_have_text(hostile)
    assert await page.locator("#inbox-items img").count() == 0
    await expect(item.locator(".kind")).to_have_text("Mention")
    await screens(page, "inbox")

    await item.get_by_label("Assign the item by did:plc:fan to").select_option(
        label="bo@acme.example"
    )
    await item.get_by_role("button", name="Assign").click()
    await expect(page.get_by_role("status")).to_have_text("Assigned.")
    await expect(items.first.locator(".assignee")).to_have_text("assigned to bo@acme.example")
    await items.first.get_by_label("Tags of the item by did:plc:fan, apart by commas").fill(
        "press, <urgent>"
    )
    await items.first.get_by_role("button", name="Save tags").click()
    await expect(items.first.locator(".tag")).to_have_text(["press", "<urgent>"])
    await page.get_by_label("Tag", exact=True).fill("press")
    await page.get_by_role("button", name="Show").click()
    await expect(items).to_have_count(1)

    await items.first.get_by_label("Reply to did:plc:fan").fill("We do, from Monday!")
    await items.first.get_by_role("button", name="Reply").click()
    await expect(page.get_by_role("alert")).to_be_visible()  # no such channel to answer from
    await expect(items.first.get_by_label("Reply to did:plc:fan")).to_have_value(
        "We do, from Monday!"
    )

    await items.first.get_by_role("button", name="Mark done").click()
    await expect(page.get_by_role("status")).to_have_text("Marked done.")
    await expect(items).to_have_count(0)
    await expect(unread).to_have_text("0")
    await page.get_by_label("Show", exact=True).select_option("done")
    await page.get_by_role("button", name="Show").click()
    await expect(items).to_have_count(1)
    item_id = await items.first.get_attribute("data-id")

    other, eve = await signed_in(browser, stack, "eve@globex.example")
    await eve.goto("/inbox?state=all")
    await expect(eve.locator("#inbox-items > li")).to_have_count(1)
    await expect(eve.locator("#inbox-items")).to_contain_text("@globex only")
    await expect(eve.locator("#inbox-items")).not_to_contain_text("Lyon")
    refused = await eve.evaluate(
        """async ([id, token]) => {
            const form = new FormData();
            form.append("csrf", token);
            form.append("done", "false");
            return (await fetch(`/inbox/${id}/done`, {method: "POST", body: form})).status;
        }""",
        [item_id, await eve.locator("input[name=csrf]").first.input_value()],
    )
    assert refused == 404
    await other.close()
    if AXE.exists():
        assert await violations(page) == []
    assert spaces.dialogs == []


async def test_a_reply_from_the_inbox_goes_out_on_bluesky_as_an_answer_to_the_post(
    tmp_path: Path, browser: Browser
) -> None:
    loopback = {**FAST, "publish_allowed_networks": [ipaddress.ip_network("127.0.0.0/8")]}
    async with local_pds() as pds:
        author, friend = await pds.create_account(), await pds.create_account()
        app_password = await pds.create_app_password(author)
        stack, resources = await start_stack(tmp_path, platform_settings=loopback)
        async with resources:
            owner = await stack.tenant("Shop")
            await person(stack, owner, "ed@shop.example", "editor")
            made = await stack.client.post(
                "/v1/channels",
                json={"network": "bluesky", "account": author.handle, "service": pds.url,
                      "app_password": app_password},
                headers=auth(owner["token"]),
            )  # fmt: skip
            assert made.status_code == 201, made.text
            record = {"$type": POST, "text": f"@{author.handle} do you ship to Lyon?",
                      "createdAt": "2026-12-06T10:00:00Z"}  # fmt: skip
            asked = xrpc_result(
                await pds.client.post(
                    "/xrpc/com.atproto.repo.createRecord",
                    json={"repo": friend.did, "collection": POST, "record": record},
                    headers=bearer(friend.access_jwt),
                )
            )["uri"]
            context, page = await signed_in(browser, stack, "ed@shop.example")
            at = now_us()
            await stack.platform.event_log.append([
                PostPublished(id="asked", key=friend.did, ts=at, source="test", post=asked,
                              author=friend.did, text=record["text"], langs=["en"],
                              mentions=[author.did], created_at=at)
            ])  # fmt: skip
            items = page.locator("#inbox-items > li")

            async def arrived() -> bool:
                await page.goto("/inbox")
                return await items.count() == 1

            await until(arrived)
            await items.first.get_by_label(f"Reply to {friend.did}").fill("We do, from Monday!")
            await items.first.get_by_role("button", name="Reply").click()
            await expect(page.get_by_role("status")).to_contain_text("Reply sent")
            await expect(items.first.locator(".badge")).to_have_count(0)  # read now

            async def answered() -> bool:
                return "We do, from Monday!" in await pds.records(author.did)

            for _ in range(20):  # published by the publisher, within a few seconds
                if await answered():
                    break
                await asyncio.sleep(0.5)
            assert await answered()
            listed = xrpc_result(
                await pds.client.get("/xrpc/com.atproto.repo.listRecords",
                                     params={"repo": author.did, "collection": POST})
            )  # fmt: skip
            (reply,) = [r["value"] for r in listed["records"]]
            assert (reply["text"], reply["reply"]["parent"]["uri"]) == (
                "We do, from Monday!",
                asked,
            )
            await context.close()
