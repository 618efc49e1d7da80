"""Notifications in a real Chromium, through the gateway: the bell in every page's header
counts what arrives live, the notifications page puts each new one at the top without a
reload, everything a notice says shows as text (never as markup), marking read works,
and one workspace's notices never reach another's people."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from hubbub.kernel.events import NoticeIssued, PersonChanged
from tests.conftest import until
from tests.support.browser import CHROMIUM, LAUNCH_ARGS
from tests.support.stack import Stack, auth, start_stack

PASSWORD = "correct horse battery"
AXE = Path(__file__).resolve().parents[2] / ".venv" / "axe-core" / "axe.min.js"
T0 = 1_800_000_000_000_000
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no browser at {CHROMIUM}")


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    fast = {"notifications_stream_s": 20.0, "notifications_heartbeat_s": 2.0,
            "notifications_poll_s": 0.2}  # fmt: skip
    built, resources = await start_stack(tmp_path, fast)
    async with resources:
        yield built


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield launched
        await launched.close()


async def join(stack: Stack, owner: dict[str, str], email: str, role: str) -> dict[str, Any]:
    """`email` joins the owner's tenant; answers its user, told to the log."""
    made = await stack.client.post(
        "/v1/invites", json={"email": email, "role": role}, headers=auth(owner["token"])
    )
    joined = await stack.client.post(
        f"/v1/invitations/{made.json()['token']}/accept", json={"password": PASSWORD}
    )
    assert joined.status_code == 201, joined.text
    user: dict[str, Any] = joined.json()["user"]
    await stack.platform.event_log.append([
        PersonChanged(
            id=f"test-person-{user['id']}", key=f"{user['tenant']}/{user['id']}", ts=T0,
            source="test", tenant=user["tenant"], user=user["id"], email=email, role=role,
        )
    ])  # fmt: skip
    return user


async def notice(stack: Stack, user: dict[str, Any], number: int, title: str, **more: Any) -> None:
    await stack.platform.event_log.append([
        NoticeIssued(
            id=f"test-notice-{number}", key=user["tenant"], ts=T0 + number, source="test",
            tenant=user["tenant"], notice=f"n{number}", kind="review_requested", title=title,
            users=[user["id"]], **more,
        )
    ])  # fmt: skip


async def sign_in(browser: Browser, stack: Stack, email: str, *, axe: bool = False) -> Page:
    context = await browser.new_context(base_url=stack.url, bypass_csp=axe)  # axe is injected
    page = await context.new_page()
    await page.goto("/signin")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{stack.url}/")
    return page


async def test_a_notice_rings_the_bell_and_lands_on_the_open_page_live_as_text(
    stack: Stack, browser: Browser
) -> None:
    acme, globex = await stack.tenant("Acme"), await stack.tenant("Globex")
    ann = await join(stack, acme, "ann@acme.example", "viewer")
    eve = await join(stack, globex, "eve@globex.example", "editor")
    page = await sign_in(browser, stack, "ann@acme.example")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    bell = page.locator("#bell")
    count = page.locator("#bell-count")
    await expect(bell).to_be_visible()
    await expect(count).to_be_hidden()

    hostile = "<script>alert('x')</script> asks for your review"
    await notice(stack, ann, 1, hostile, body="<img src=x onerror=alert(1)>", link="/publish")
    await notice(stack, eve, 2, "Globex's own news")
    await expect(count).to_have_text("1", timeout=10_000)  # live, on the overview
    await expect(bell).to_have_attribute("aria-label", "Notifications: 1 unread")

    await bell.click()
    await expect(page).to_have_url(f"{stack.url}/notifications")
    items = page.locator("#notification-list > li")
    await expect(items).to_have_count(1)
    await expect(items.first.get_by_role("link")).to_have_text(hostile)
    await expect(items.first).to_contain_text("<img src=x onerror=alert(1)>")

    await notice(stack, ann, 3, "Bob approved <b>Launch</b>", link="javascript:alert(2)")
    await expect(items).to_have_count(2, timeout=10_000)  # prepended, no reload
    newest = items.first
    await expect(newest).to_contain_text("Bob approved <b>Launch</b>")
    await expect(newest.get_by_role("link")).to_have_count(0)  # not a path of the app
    await expect(count).to_have_text("2")
    assert await page.locator("#notification-list script, #notification-list img").count() == 0

    await newest.get_by_role("button", name="Mark “Bob approved <b>Launch</b>” read").click()
    await expect(page).to_have_url(f"{stack.url}/notifications")
    await expect(count).to_have_text("1", timeout=10_000)
    await expect(page.locator("#notification-list > li.unread")).to_have_count(1)
    await page.get_by_role("button", name="Mark all read").click()
    await expect(page.locator("#notification-list > li.unread")).to_have_count(0)
    await expect(count).to_be_hidden(timeout=10_000)
    assert dialogs == []

    other = await sign_in(browser, stack, "eve@globex.example")
    await other.goto("/notifications")
    await expect(other.locator("#notification-list > li")).to_have_count(1)
    await expect(other.locator("#notification-list")).to_contain_text("Globex's own news")
    await expect(other.locator("#notification-list")).not_to_contain_text("review")


async def test_the_notifications_page_passes_axe(stack: Stack, browser: Browser) -> None:
    if not AXE.exists():
        pytest.skip(f"axe-core is not at {AXE}: `make test` fetches it")
    acme = await stack.tenant("Acme")
    ann = await join(stack, acme, "ann@acme.example", "viewer")
    await notice(stack, ann, 1, "Bob asks for your review", body="Launch post", link="/publish")
    await notice(stack, ann, 2, "Cy commented")
    inbox = await stack.platform.notifications()

    async def delivered() -> bool:
        return await inbox.unread(ann["tenant"], ann["id"]) == 2

    await until(delivered)
    page = await sign_in(browser, stack, "ann@acme.example", axe=True)
    await page.goto("/notifications")
    await page.locator("#notification-list form").first.get_by_role("button").click()
    await page.add_script_tag(path=str(AXE))
    violations = await page.evaluate(
        """async () => (await axe.run()).violations
             .filter(v => v.impact === "serious" || v.impact === "critical")
             .map(v => `${v.id}: ${v.help} (${v.nodes.length})`)"""
    )
    assert violations == []
