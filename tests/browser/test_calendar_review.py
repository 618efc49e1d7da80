"""The calendar and approvals together, in a real Chromium through the gateway: a post
under an approval workflow dragged to another time is a new version whose approval
starts again. The calendar says so and shows the entry in review at its new time, and
the post's page shows the new version waiting on the first step's approvers; a post
approved and scheduled goes back into review the same way. Screenshots go to
`test-artifacts/screens/`."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.browser.test_calendar import cell, entry
from tests.browser.test_web_app import PASSWORD, browser, person, screens, signed_in
from tests.support.browser import CHROMIUM
from tests.support.stack import Stack, auth, start_stack

__all__ = ["browser"]  # the fixture, shared with the other browser tests
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no browser at {CHROMIUM}")
TEXT = "Spring menu <i>launch</i>"
ADA, BO, ED = "ada@bistro.example", "bo@bistro.example", "ed@bistro.example"


@dataclass
class Bistro:
    """A tenant whose Paris channel's posts need the desk (Ada or Bo) and then legal
    (Bo); Ed's post on it at 09:00 on Friday 26 March 2027, approved by Ada (so waiting
    on legal); Ed signed in, in Paris."""

    stack: Stack
    owner: dict[str, str]
    tokens: dict[str, str]
    channel: str
    post: str
    context: BrowserContext
    page: Page

    async def decide(self, email: str, version: int) -> None:
        approved = await self.stack.client.post(
            f"/v1/posts/{self.post}/review", json={"decision": "approve", "version": version},
            headers=auth(self.tokens[email]),
        )  # fmt: skip
        assert approved.status_code == 200, approved.text

    async def review(self) -> dict[str, object]:
        found = await self.stack.client.get(f"/v1/posts/{self.post}/review",
                                            headers=auth(self.owner["token"]))  # fmt: skip
        assert found.status_code == 200, found.text
        return dict(found.json())

    async def open_jobs(self) -> list[dict[str, object]]:
        jobs = await self.stack.client.get("/v1/jobs", headers=auth(self.owner["token"]))
        return [j for j in jobs.json() if j["post"] == self.post and j["state"] != "cancelled"]


@pytest.fixture
async def bistro(tmp_path: Path, browser: Browser) -> AsyncIterator[Bistro]:
    loopback = {"publish_allowed_networks": [ipaddress.ip_network("127.0.0.0/8")]}
    stack, resources = await start_stack(tmp_path, platform_settings=loopback)
    async with resources:
        owner = await stack.tenant("Bistro")
        for email, role in ((ED, "editor"), (ADA, "admin"), (BO, "admin")):
            await person(stack, owner, email, role)
        people = await stack.client.get("/v1/people", headers=auth(owner["token"]))
        ids = {p["email"]: p["id"] for p in people.json()}
        made = await stack.client.post(
            "/v1/channels",  # never reached: its posts are in 2027
            json={"network": "bluesky", "account": "bistro.bsky.social",
                  "service": "http://127.0.0.1:9", "app_password": "abcd-efgh-ijkl-mnop",
                  "time_zone": "Europe/Paris"},
            headers=auth(owner["token"]),
        )  # fmt: skip
        assert made.status_code == 201, made.text
        channel = made.json()["id"]
        flow = await stack.client.post(
            "/v1/workflows",
            json={"name": "Menu posts", "channels": [channel], "steps": [
                {"name": "Desk", "users": [ids[ADA], ids[BO]], "mode": "any"},
                {"name": "Legal", "users": [ids[BO]]},
            ]},
            headers=auth(owner["token"]),
        )  # fmt: skip
        assert flow.status_code == 201, flow.text
        tokens = {}
        for email in (ED, ADA, BO):
            session = await stack.client.post(
                "/v1/sessions", json={"email": email, "password": PASSWORD}
            )
            assert session.status_code == 201, session.text
            tokens[email] = session.json()["token"]
        written = await stack.client.post(
            "/v1/posts", json={"text": TEXT, "channels": [channel], "at": "2027-03-26T09:00"},
            headers=auth(tokens[ED]),
        )  # fmt: skip
        assert written.status_code == 201, written.text
        context, page = await signed_in(browser, stack, ED)
        await page.goto("/settings")
        await page.get_by_label("Time zone").fill("Europe/Paris")
        await page.get_by_role("button", name="Save").first.click()
        made_up = Bistro(stack, owner, tokens, channel, written.json()["post"], context, page)
        await made_up.decide(ADA, 1)  # the desk's step is done; legal's comes next
        yield made_up
        await context.close()


async def test_a_post_in_review_dragged_elsewhere_goes_through_approval_again(
    bistro: Bistro, browser: Browser
) -> None:
    page = bistro.page
    await page.goto(f"/publish/posts/{bistro.post}")
    await expect(page.locator("#waiting-on")).to_have_text(f"Waiting on {BO}.")

    await page.goto("/calendar?view=week&day=2027-03-26")
    shown = entry(page, TEXT)
    await expect(shown.locator(".label")).to_have_text("In review")
    await expect(shown.locator(".time")).to_have_text("09:00")
    await shown.drag_to(cell(page, "2027-03-26T11:30"))
    await expect(page.locator("#calendar-status")).to_have_text(
        "Rescheduled to Fri 26 Mar 11:30. Version 2 goes through approval again: In review."
    )
    moved = cell(page, "2027-03-26T11:30").locator(".entry")
    await expect(moved).to_contain_text(TEXT)
    await expect(moved.locator(".label")).to_have_text("In review")
    await expect(moved.locator(".time")).to_have_text("11:30")
    await screens(page, "calendar-review-moved")

    await page.reload()  # what the API says now, not only what the page moved
    moved = cell(page, "2027-03-26T11:30").locator(".entry")
    await expect(moved.locator(".time")).to_have_text("11:30")
    await expect(moved.locator(".label")).to_have_text("In review")
    await expect(cell(page, "2027-03-26T09:00").locator(".entry")).to_have_count(0)
    assert await bistro.open_jobs() == []  # nothing is scheduled before its approval

    # The post's page: version 2, due at its new time, back at the first step.
    await moved.get_by_role("link", name=f"Open the post: {TEXT}").click()
    await expect(page.get_by_role("heading", name="Approval")).to_be_visible()
    await expect(page.get_by_text("Version 2:")).to_contain_text(
        "to publish Mar 26, 2027, 11:30:00"
    )
    await expect(page.locator("#review-state")).to_have_text("in review")
    await expect(page.locator("#waiting-on")).to_have_text(f"Waiting on {ADA}, {BO}.")
    steps = page.get_by_role("list", name="Steps")
    await expect(steps.get_by_role("listitem").filter(has_text="Desk")).to_contain_text("(now)")
    await expect(steps.get_by_role("listitem").filter(has_text="Legal")).to_contain_text(
        "(to come)"
    )
    audit = page.locator("#audit tbody td.action")
    await expect(audit.filter(has_text="rescheduled")).to_have_count(1)
    await screens(page, "post-rescheduled-in-review")
    said = await bistro.review()
    assert (said["version"], said["state"], said["step"]) == (2, "in_review", 0)

    # The desk's approvers are asked again.
    admin_context, admin = await signed_in(browser, bistro.stack, ADA)
    await admin.goto("/approvals")
    await expect(
        admin.get_by_role("table", name="Waiting on you").get_by_role("link", name=TEXT)
    ).to_be_visible()
    await admin_context.close()


async def approved_and_dragged(bistro: Bistro) -> Page:
    """Legal approves the post (so it is scheduled), then Ed drags it to Thursday 10:30."""
    await bistro.decide(BO, 1)
    assert [j["state"] for j in await bistro.open_jobs()] == ["scheduled"]
    page = bistro.page
    await page.goto("/calendar?view=week&day=2027-03-26")
    shown = entry(page, TEXT)
    await expect(shown.locator(".label")).to_have_text("Scheduled")
    await shown.drag_to(cell(page, "2027-03-25T10:30"))
    await expect(page.locator("#calendar-status")).to_have_text(
        "Rescheduled to Thu 25 Mar 10:30. Version 2 goes through approval again: In review."
    )
    return page


async def test_an_approved_post_dragged_elsewhere_is_in_review_again(bistro: Bistro) -> None:
    page = await approved_and_dragged(bistro)
    moved = cell(page, "2027-03-25T10:30").locator(".entry")
    await expect(moved).to_have_attribute("data-state", "in_review")
    await page.reload()
    moved = cell(page, "2027-03-25T10:30").locator(".entry")
    await expect(moved.locator(".label")).to_have_text("In review")
    await expect(cell(page, "2027-03-26T09:00").locator(".entry")).to_have_count(0)
    assert await bistro.open_jobs() == []  # its scheduled job is cancelled until approved

    await moved.get_by_role("link", name=f"Open the post: {TEXT}").click()
    await expect(page.get_by_text("Version 2:")).to_contain_text(
        "to publish Mar 25, 2027, 10:30:00"
    )
    await expect(page.locator("#review-state")).to_have_text("in review")
    await expect(page.locator("#waiting-on")).to_have_text(f"Waiting on {ADA}, {BO}.")


async def test_a_moved_approved_post_says_in_review_without_a_reload(bistro: Bistro) -> None:
    page = await approved_and_dragged(bistro)
    moved = cell(page, "2027-03-25T10:30").locator(".entry")
    await expect(moved.locator(".label")).to_have_text("In review", timeout=2000)
