"""Removing a person from the workspace in a real Chromium, through the gateway: an admin
removes an editor from Settings, who disappears from the list and whose open page sends
them to sign in; no one is offered to remove themselves; someone above the admin stays,
with the reason shown; and a form post without its CSRF token removes no one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Locator, expect

from tests.browser.test_web_app import browser, person, signed_in
from tests.support.browser import CHROMIUM
from tests.support.stack import Stack, auth, start_stack

__all__ = ["browser"]  # the fixture, shared with the other browser tests
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no browser at {CHROMIUM}")


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    built, resources = await start_stack(tmp_path)
    async with resources:
        yield built


async def test_an_admin_removes_a_person_from_settings(stack: Stack, browser: Browser) -> None:
    owner = await stack.tenant("Newsroom")
    for email, role in (
        ("boss@newsroom.example", "owner"),
        ("ada@newsroom.example", "admin"),
        ("ed@newsroom.example", "editor"),
        ("vi@newsroom.example", "viewer"),
    ):
        await person(stack, owner, email, role)
    eds_context, eds = await signed_in(browser, stack, "ed@newsroom.example")
    context, page = await signed_in(browser, stack, "ada@newsroom.example")
    await page.goto("/settings")
    listed = page.get_by_role("region", name="People").get_by_role("table").first

    def row_of(email: str) -> Locator:
        return listed.get_by_role("cell", name=email, exact=True)

    await expect(row_of("ed@newsroom.example")).to_be_visible()
    await expect(page.get_by_text("Remove ada@newsroom.example")).to_have_count(0)  # herself

    await page.get_by_text("Remove ed@newsroom.example", exact=True).click()  # opens the step
    await page.get_by_role("button", name="Remove ed@newsroom.example from the workspace").click()
    await expect(page.get_by_role("status")).to_have_text(
        "ed@newsroom.example is removed from the workspace: their sessions have ended."
    )
    await expect(row_of("ed@newsroom.example")).to_have_count(0)
    users = (await stack.client.get("/v1/users", headers=auth(owner["token"]))).json()
    assert "ed@newsroom.example" not in {u["email"] for u in users}
    await eds.goto("/settings")  # the page they had open no longer answers them
    await expect(eds).to_have_url(f"{stack.url}/signin")
    await eds_context.close()

    await page.get_by_text("Remove boss@newsroom.example", exact=True).click()
    await page.get_by_role("button", name="Remove boss@newsroom.example from the workspace").click()
    await expect(page.get_by_role("alert")).to_have_text(
        "the admin role cannot remove someone of the owner role"
    )
    await expect(row_of("boss@newsroom.example")).to_be_visible()

    vi = next(u["id"] for u in users if u["email"] == "vi@newsroom.example")
    forged = await page.evaluate(
        """async (user) => {
            const form = new FormData();
            form.append("csrf", "not-the-token");
            const path = `/settings/users/${user}/remove`;
            const answer = await fetch(path, {method: "POST", body: form});
            const bare = await fetch(path, {method: "POST"});
            return [answer.status, await answer.text(), bare.status];
        }""",
        vi,
    )
    assert (forged[0], forged[2]) == (403, 403)
    assert "stale or forged" in forged[1]
    users = (await stack.client.get("/v1/users", headers=auth(owner["token"]))).json()
    assert "vi@newsroom.example" in {u["email"] for u in users}
    await context.close()
