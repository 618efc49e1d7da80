"""The content calendar in a real Chromium, through the gateway: a post scheduled at 09:00
in Paris shows at 09:00 in the week that Paris moves its clocks forward and in the week
after, in the person's own zone, and at 04:00 then 03:00 for someone in New York (whose
clocks moved two weeks before); dragging it to another half-hour, or moving it with the
keyboard, reschedules it (the API's job falls due then); a channel's queue pauses and
resumes from the page; and a post published on Bluesky's own PDS shows as published at
the local time it went out. Screenshots go to `test-artifacts/screens/`."""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from icalendar import Calendar as ICalendar
from playwright.async_api import Browser, Locator, Page, expect

from tests.browser.test_approvals import until_s
from tests.browser.test_web_app import PASSWORD, browser, person, screens, signed_in
from tests.conftest import until
from tests.support.browser import CHROMIUM
from tests.support.pds import local_pds
from tests.support.stack import Stack, auth, start_stack

__all__ = ["browser"]  # the fixture, shared with the other browser tests
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no browser at {CHROMIUM}")
PARIS = ZoneInfo("Europe/Paris")
WINTER = "Friday's briefing <b>bold?</b>"
SUMMER = "Monday's briefing"


@dataclass
class Desk:
    """A tenant with a Paris channel (its queue at 09:00 every day) and two posts at
    09:00 there, either side of the change to summer time; its editor signed in, in
    Paris, on the calendar."""

    stack: Stack
    owner: dict[str, str]
    channel: str
    page: Page


def paris_us(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=PARIS).timestamp() * 1_000_000)


@pytest.fixture
async def desk(tmp_path: Path, browser: Browser) -> AsyncIterator[Desk]:
    loopback = {"publish_allowed_networks": [ipaddress.ip_network("127.0.0.0/8")]}
    stack, resources = await start_stack(tmp_path, platform_settings=loopback)
    async with resources:
        owner = await stack.tenant("Desk")
        await person(stack, owner, "ed@desk.example", "editor")
        made = await stack.client.post(
            "/v1/channels",
            json={"network": "bluesky", "account": "desk.bsky.social",
                  "service": "http://127.0.0.1:9", "app_password": "abcd-efgh-ijkl-mnop",
                  "time_zone": "Europe/Paris"},
            headers=auth(owner["token"]),
        )  # fmt: skip
        assert made.status_code == 201, made.text
        channel = made.json()["id"]
        queued = await stack.client.put(f"/v1/channels/{channel}/queue",
                                        json={"slots": "mon-sun 09:00"},
                                        headers=auth(owner["token"]))  # fmt: skip
        assert queued.status_code == 200, queued.text
        session = await stack.client.post(
            "/v1/sessions", json={"email": "ed@desk.example", "password": PASSWORD}
        )
        assert session.status_code == 201, session.text
        for text, at in ((WINTER, "2027-03-26T09:00"), (SUMMER, "2027-03-29T09:00")):
            posted = await stack.client.post(  # written by ed, who may move them
                "/v1/posts", json={"text": text, "channels": [channel], "at": at},
                headers=auth(session.json()["token"]),
            )  # fmt: skip
            assert posted.status_code == 201, posted.text
        context, page = await signed_in(browser, stack, "ed@desk.example")
        await page.goto("/settings")
        await page.get_by_label("Time zone").fill("Europe/Paris")
        await page.get_by_role("button", name="Save").first.click()
        await (
            page.get_by_role("navigation", name="Main").get_by_role("link", name="Calendar").click()
        )
        await page.goto("/calendar?view=week&day=2027-03-26")
        yield Desk(stack, owner, channel, page)
        await context.close()


def cell(page: Page, at: str) -> Locator:
    return page.locator(f'td[data-at="{at}"]')


def entry(page: Page, text: str) -> Locator:
    return page.locator(".entry", has_text=text)


async def due_of(desk: Desk, text: str) -> list[int]:
    """When the API says each open job of the post that says `text` falls due."""
    jobs = await desk.stack.client.get("/v1/jobs", headers=auth(desk.owner["token"]))
    found = []
    for job in jobs.json():
        post = await desk.stack.client.get(f"/v1/posts/{job['post']}",
                                           headers=auth(desk.owner["token"]))  # fmt: skip
        if post.json()["text"] == text and job["state"] in ("scheduled", "held"):
            found.append(job["due_us"])
    return found


async def test_posts_show_at_nine_in_paris_on_both_sides_of_the_change_to_summer_time(
    desk: Desk,
) -> None:
    page = desk.page
    await expect(page.get_by_text("Times in Europe/Paris")).to_be_visible()
    friday = cell(page, "2027-03-26T09:00")
    await expect(friday.locator(".entry")).to_contain_text(WINTER)  # shown as text
    await expect(friday.locator(".entry .time")).to_have_text("09:00")
    await expect(friday.locator(".entry .label")).to_have_text("Scheduled")
    await expect(friday.locator(".entry .where")).to_have_text("desk.bsky.social, by you")
    sunday = cell(page, "2027-03-28T09:00")  # the day the clocks go forward
    await expect(sunday.locator(".slot")).to_have_text("Free slot: desk.bsky.social")
    assert await page.locator("table.calendar tbody tr").count() == 48
    await screens(page, "calendar-week")

    await page.get_by_role("link", name="Month view").click()
    for day, text in (("2027-03-26", WINTER), ("2027-03-29", SUMMER)):
        shown = page.locator(f'td[data-date="{day}"] .entry')
        await expect(shown).to_contain_text(text)
        await expect(shown.locator(".time")).to_have_text("09:00")
    await screens(page, "calendar-month")

    await page.get_by_role("link", name="Week view").click()
    await page.get_by_role("link", name="Next week").click()
    monday = cell(page, "2027-03-29T09:00")
    await expect(monday.locator(".entry")).to_contain_text(SUMMER)
    await expect(monday.locator(".entry .time")).to_have_text("09:00")


async def test_dragging_a_post_to_another_half_hour_reschedules_it(desk: Desk) -> None:
    page = desk.page
    post = entry(page, WINTER)
    await post.drag_to(cell(page, "2027-03-26T11:30"))
    await expect(page.locator("#calendar-status")).to_have_text("Rescheduled to Fri 26 Mar 11:30.")
    await expect(cell(page, "2027-03-26T11:30").locator(".entry")).to_contain_text(WINTER)
    await until(lambda: _due_is(desk, WINTER, "2027-03-26T11:30"))

    forged = await page.request.post(  # the session's cookie, without the page's token
        "/calendar/reschedule",
        data={"post": "0123456789abcdef", "channel": desk.channel, "at": "2027-03-26T12:00"},
    )
    assert forged.status == 403
    await page.reload()  # what the API says now, not only what the page moved
    await expect(cell(page, "2027-03-26T11:30").locator(".entry .time")).to_have_text("11:30")
    await expect(cell(page, "2027-03-26T09:00").locator(".entry")).to_have_count(0)


async def test_the_keyboard_moves_a_post_by_half_hours_and_days(desk: Desk) -> None:
    page = desk.page
    status = page.locator("#calendar-status")
    post = entry(page, WINTER)
    await post.focus()
    await page.keyboard.press("ArrowDown")
    await expect(status).to_contain_text("to Friday, March 26 at 09:30: Enter to move it there")
    await page.keyboard.press("Escape")
    await expect(status).to_contain_text("stays at Friday, March 26 at 09:00")
    await expect(cell(page, "2027-03-26T09:00").locator(".entry")).to_have_count(1)

    await post.focus()
    for key in ("ArrowRight", "ArrowRight", "ArrowDown", "ArrowDown"):
        await page.keyboard.press(key)
    await expect(cell(page, "2027-03-28T10:00").locator(".entry")).to_contain_text(WINTER)
    await page.keyboard.press("Enter")
    await expect(status).to_have_text("Rescheduled to Sun 28 Mar 10:00.")  # summer time by then
    await until(lambda: _due_is(desk, WINTER, "2027-03-28T10:00"))
    await expect(post).to_be_focused()

    await page.keyboard.press("ArrowUp")
    await page.keyboard.press("ArrowUp")
    await page.keyboard.press("ArrowLeft")
    await page.keyboard.press("ArrowLeft")
    await page.keyboard.press("ArrowLeft")
    await page.keyboard.press("ArrowLeft")
    await page.keyboard.press("Enter")
    await expect(status).to_have_text("Rescheduled to Wed 24 Mar 09:00.")
    await until(lambda: _due_is(desk, WINTER, "2027-03-24T09:00"))


async def test_a_channels_queue_pauses_and_resumes_from_the_calendar(desk: Desk) -> None:
    page = desk.page
    await page.get_by_role("button", name="Pause the queue of desk.bsky.social").click()
    await expect(page.get_by_role("status")).to_contain_text("The channel's queue is paused")
    await expect(page.get_by_text("Paused: its posts are held", exact=True)).to_be_visible()
    await expect(entry(page, WINTER).locator(".label")).to_have_text("Held (queue paused)")
    await expect(page.locator(".slot.paused").first).to_contain_text("(paused)")
    await screens(page, "calendar-paused")
    await page.get_by_role("button", name="Resume the queue of desk.bsky.social").click()
    await expect(page.get_by_role("status")).to_contain_text("resumed")
    await expect(entry(page, WINTER).locator(".label")).to_have_text("Scheduled")
    await expect(page).to_have_url(
        f"{desk.stack.url}/calendar?view=week&day=2027-03-26&done=resumed"
    )
    # The queue can take the channel's best times to post instead of its own slots.
    await page.get_by_role(
        "button", name="Use the best times to post for the queue of desk.bsky.social"
    ).click()
    await expect(page.get_by_role("status")).to_contain_text("best times to post")
    await expect(page.get_by_text("add to queue takes its best times to post")).to_be_visible()
    queue = await desk.stack.client.get(
        f"/v1/channels/{desk.channel}/queue", headers=auth(desk.owner["token"])
    )
    assert queue.json()["best_times"] is True
    await page.get_by_role(
        "button", name="Use its own slots for the queue of desk.bsky.social"
    ).click()
    await expect(page.get_by_role("status")).to_contain_text("own slots again")


async def _due_is(desk: Desk, text: str, at: str) -> bool:
    return await due_of(desk, text) == [paris_us(at)]


async def test_a_move_the_api_refuses_is_said_and_the_post_goes_back(desk: Desk) -> None:
    page = desk.page
    theirs = await desk.stack.client.post(
        "/v1/posts",
        json={"text": "The owner's own", "channels": [desk.channel], "at": "2027-03-24T14:00"},
        headers=auth(desk.owner["token"]),
    )  # fmt: skip
    assert theirs.status_code == 201, theirs.text
    await page.reload()
    owners = entry(page, "The owner's own")
    await owners.drag_to(cell(page, "2027-03-25T14:00"))
    await expect(page.locator("#calendar-error")).to_contain_text(
        "“The owner's own” was not moved: "
    )
    await expect(cell(page, "2027-03-24T14:00").locator(".entry")).to_contain_text("owner's own")
    assert await due_of(desk, "The owner's own") == [paris_us("2027-03-24T14:00")]


async def test_add_to_queue_the_feed_and_the_heat_map(desk: Desk) -> None:
    page, stack = desk.page, desk.stack
    await page.get_by_text("Add to the queue of desk.bsky.social").click()
    await page.get_by_label("Post for the next free slot of desk.bsky.social").fill(
        "Queued from the calendar"
    )
    await page.get_by_role("button", name="Add to the queue").click()
    await expect(page.get_by_role("status")).to_have_text("Added to the queue.")
    [due] = await due_of(desk, "Queued from the calendar")
    local = datetime.fromtimestamp(due / 1e6, PARIS)
    assert local.strftime("%H:%M") == "09:00"  # the queue's next free slot
    await page.goto(f"/calendar?day={local.date().isoformat()}")
    await expect(cell(page, f"{local.date().isoformat()}T09:00").locator(".entry")).to_contain_text(
        "Queued from the calendar"
    )

    await page.get_by_label("Best times to post on").select_option(label="desk.bsky.social")
    await page.get_by_role("button", name="Show").click()
    await expect(page.get_by_text("Heat map: the darker a half-hour")).to_be_visible()
    assert await page.locator("td.cell[class*='heat-']").count() == 7 * 48
    assert await page.get_by_text("No best times").count() == 0

    await page.get_by_role("button", name="Get the address of my calendar feed").click()
    address = await page.get_by_label("Calendar feed address").input_value()
    assert address.startswith(f"{stack.url}/v1/public/calendar/")
    async with httpx.AsyncClient() as outsider:
        feed = await outsider.get(address)
    assert feed.status_code == 200, feed.text
    summaries = [str(e["summary"]) for e in ICalendar.from_ical(feed.content).walk("VEVENT")]
    assert sorted(summaries) == sorted(
        f"scheduled: {text}" for text in (WINTER, SUMMER, "Queued from the calendar")
    )
    await page.get_by_role("link", name="Back to the calendar").click()
    await expect(page.get_by_role("heading", name="Calendar", level=1)).to_be_visible()


async def test_someone_in_new_york_sees_paris_posts_at_their_own_time_across_the_change(
    desk: Desk,
) -> None:
    """New York moved its clocks on 14 March and Paris moves them on the 28th: 09:00 in
    Paris is 04:00 in New York until then, and 03:00 from that day."""
    page = desk.page
    await page.goto("/settings")
    await page.get_by_label("Time zone").fill("America/New_York")
    await page.get_by_role("button", name="Save").first.click()
    await page.goto("/calendar?view=week&day=2027-03-26")
    await expect(page.get_by_text("Times in America/New_York")).to_be_visible()
    friday = cell(page, "2027-03-26T04:00").locator(".entry")
    await expect(friday).to_contain_text(WINTER)
    await expect(friday.locator(".time")).to_have_text("04:00")
    await expect(cell(page, "2027-03-26T09:00").locator(".entry")).to_have_count(0)
    saturday = cell(page, "2027-03-27T04:00")
    await expect(saturday.locator(".slot")).to_have_text("Free slot: desk.bsky.social")
    sunday = cell(page, "2027-03-28T03:00")  # the day Paris goes forward
    await expect(sunday.locator(".slot")).to_have_text("Free slot: desk.bsky.social")
    await expect(cell(page, "2027-03-28T04:00").locator(".slot")).to_have_count(0)
    await screens(page, "calendar-new-york")

    await page.get_by_role("link", name="Month view").click()
    for day, text, time in (("2027-03-26", WINTER, "04:00"), ("2027-03-29", SUMMER, "03:00")):
        shown = page.locator(f'td[data-date="{day}"] .entry')
        await expect(shown).to_contain_text(text)
        await expect(shown.locator(".time")).to_have_text(time)

    await page.get_by_role("link", name="Week view").click()
    await page.get_by_role("link", name="Next week").click()
    monday = cell(page, "2027-03-29T03:00").locator(".entry")
    await expect(monday).to_contain_text(SUMMER)
    await expect(monday.locator(".time")).to_have_text("03:00")

    # Dragged in New York's time, it lands at the same moment in Paris's.
    await page.goto("/calendar?view=week&day=2027-03-26")
    await entry(page, WINTER).drag_to(cell(page, "2027-03-26T05:30"))
    await expect(page.locator("#calendar-status")).to_have_text("Rescheduled to Fri 26 Mar 05:30.")
    await until(lambda: _due_is(desk, WINTER, "2027-03-26T10:30"))
    await page.reload()
    await expect(cell(page, "2027-03-26T05:30").locator(".entry .time")).to_have_text("05:30")


async def test_a_published_post_shows_as_published_at_the_local_time_it_went_out(
    tmp_path: Path, browser: Browser
) -> None:
    """Published on Bluesky's own PDS through a Paris channel, seen from Kolkata (whose
    offset is half an hour off Paris's)."""
    loopback = {"publish_allowed_networks": [ipaddress.ip_network("127.0.0.0/8")]}
    text = "Out now: the <b>autumn</b> list"
    async with local_pds() as pds:
        author = await pds.create_account()
        app_password = await pds.create_app_password(author)
        stack, resources = await start_stack(tmp_path, platform_settings=loopback)
        async with resources:
            owner = await stack.tenant("Press")
            await person(stack, owner, "ed@press.example", "editor")
            made = await stack.client.post(
                "/v1/channels",
                json={"network": "bluesky", "account": author.handle, "service": pds.url,
                      "app_password": app_password, "time_zone": "Europe/Paris"},
                headers=auth(owner["token"]),
            )  # fmt: skip
            assert made.status_code == 201, made.text
            context, page = await signed_in(browser, stack, "ed@press.example")
            await page.goto("/settings")
            await page.get_by_label("Time zone").fill("Asia/Kolkata")
            await page.get_by_role("button", name="Save").first.click()

            # At the start of a minute, so that it goes out within that same minute.
            now = datetime.now(UTC)
            if now.second > 30:
                await asyncio.sleep(61 - now.second)
            minute = datetime.now(UTC).replace(second=0, microsecond=0)
            session = await stack.client.post(
                "/v1/sessions", json={"email": "ed@press.example", "password": PASSWORD}
            )
            at = minute.astimezone(PARIS).strftime("%Y-%m-%dT%H:%M")
            posted = await stack.client.post(
                "/v1/posts", json={"text": text, "channels": [made.json()["id"]], "at": at},
                headers=auth(session.json()["token"]),
            )  # fmt: skip
            assert posted.status_code == 201, posted.text

            async def published() -> bool:
                jobs = await stack.client.get("/v1/jobs", headers=auth(owner["token"]))
                return [job["state"] for job in jobs.json()] == ["published"]

            await until_s(published, 20)
            assert await pds.records(author.did) == [text]

            local = minute.astimezone(ZoneInfo("Asia/Kolkata"))
            half = f"{local:%Y-%m-%dT%H}:{local.minute // 30 * 30:02d}"
            await page.goto("/calendar")
            await expect(page.get_by_text("Times in Asia/Kolkata")).to_be_visible()
            shown = cell(page, half).locator(".entry")
            await expect(shown).to_contain_text(text)
            await expect(shown.locator(".label")).to_have_text("Published")
            await expect(shown.locator(".time")).to_have_text(f"{local:%H:%M}")
            assert await shown.get_attribute("draggable") is None  # it is out: not movable
            await screens(page, "calendar-published")
            await page.get_by_role("link", name="Month view").click()
            day = page.locator(f'td[data-date="{local.date().isoformat()}"] .entry')
            await expect(day.locator(".label")).to_have_text("Published")
            await expect(day.locator(".time")).to_have_text(f"{local:%H:%M}")

            # The post's history says when it went out, in the same zone and minute.
            await day.get_by_role("link", name=f"Open the post: {text}").click()
            history = page.get_by_role("region", name="History")
            went = history.get_by_role("row").filter(has_text="published")
            await expect(went).to_have_count(1)
            when = (await went.get_by_role("cell").first.inner_text()).strip()
            clock = re.search(r"(\d{1,2}):(\d{2}):\d{2}\s*([AP]M)", when)
            assert clock is not None, when
            hours = int(clock[1]) % 12 + (12 if clock[3] == "PM" else 0)
            assert f"{hours:02d}:{clock[2]}" == f"{local:%H:%M}", when
            await context.close()
