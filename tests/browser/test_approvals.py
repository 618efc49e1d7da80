"""Approvals in a real Chromium, through the gateway, with Bluesky's own PDS: an admin sets
up a workflow of two steps; an editor writes a post under it; an approver asks for
changes; the editor edits it (a new version); both approvers approve; an external
reviewer approves through a link, with no account; and the approved version is what
the PDS receives. Whatever people write shows as text. Screenshots go to
`test-artifacts/screens/`."""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.browser.test_composer import violations
from tests.browser.test_web_app import AXE, browser, person, screens, signed_in
from tests.support.browser import CHROMIUM
from tests.support.pds import Account, LocalPds, local_pds
from tests.support.stack import Stack, auth, start_stack

__all__ = ["browser"]  # the fixture, shared with the other browser tests
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no browser at {CHROMIUM}")
FIRST = "Our launch party is on Friday <script>alert('x')</script>"
EDITED = "Our launch party is on Friday at 7pm: doors open at 6:30"
CHANGES = "Say when the doors open"


@dataclass
class Agency:
    """A stack with a tenant whose Bluesky channel publishes to a local PDS, and its
    people: an editor, an admin and a second approver."""

    stack: Stack
    owner: dict[str, str]
    pds: LocalPds
    author: Account
    channel: str


@pytest.fixture
async def agency(tmp_path: Path) -> AsyncIterator[Agency]:
    loopback = {"publish_allowed_networks": [ipaddress.ip_network("127.0.0.0/8")]}
    async with local_pds() as pds:
        author = await pds.create_account()
        app_password = await pds.create_app_password(author)
        stack, resources = await start_stack(tmp_path, platform_settings=loopback)
        async with resources:
            owner = await stack.tenant("Agency")
            for email, role in (
                ("ed@agency.example", "editor"),
                ("ada@agency.example", "admin"),
                ("bo@agency.example", "editor"),
            ):
                await person(stack, owner, email, role)
            made = await stack.client.post(
                "/v1/channels",
                json={"network": "bluesky", "account": author.handle, "service": pds.url,
                      "app_password": app_password},
                headers=auth(owner["token"]),
            )  # fmt: skip
            assert made.status_code == 201, made.text
            yield Agency(stack, owner, pds, author, made.json()["id"])


async def make_the_workflow(page: Page, channel: str) -> None:
    """Through /settings/workflows: posts on `channel` need the team (both named
    approvers) and then the client (an external reviewer)."""
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Workflows").click()
    await expect(page.get_by_text("No workflows")).to_be_visible()
    new = page.locator("form[action='/settings/workflows']")
    await new.get_by_label("Workflow name").fill("Client posts")
    await new.get_by_role("checkbox", name=channel).check()
    first = new.get_by_role("group", name="Step 1", exact=True)
    await first.get_by_label("Name of step 1").fill("Team")
    await first.get_by_role("checkbox", name="ada@agency.example").check()
    await first.get_by_role("checkbox", name="bo@agency.example").check()
    await first.get_by_label("Step 1 needs").select_option("all")
    second = new.get_by_role("group", name="Step 2", exact=True)
    await second.get_by_label("Name of step 2").fill("Client")
    await second.get_by_role("checkbox", name="an external reviewer, by link").check()
    await new.get_by_role("button", name="Make the workflow").click()
    made = page.get_by_role("article").filter(has_text="Client posts")
    await expect(made).to_contain_text("Team: all of ada@agency.example, bo@agency.example")
    await expect(made).to_contain_text("Client: any one of an external reviewer")


async def open_from_approvals(page: Page, table: str, text: str) -> None:
    """The post (by the start of its text) from the approvals inbox's `table`."""
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Approvals").click()
    await page.get_by_role("table", name=table).get_by_role("link", name=text).click()
    await expect(page).to_have_url(re.compile(r"/publish/posts/[^/]+$"))
    await expect(page.get_by_role("heading", name="Approval")).to_be_visible()


async def decide(page: Page, button: str, reason: str = "") -> None:
    if reason:
        await page.get_by_label("Reason (needed to reject").fill(reason)
    await page.get_by_role("button", name=button, exact=True).click()
    await expect(page.get_by_role("heading", name="Approval")).to_be_visible()


async def test_a_post_goes_through_changes_two_approvers_and_a_client_to_the_pds(
    agency: Agency, browser: Browser
) -> None:
    stack = agency.stack
    dialogs: list[str] = []
    contexts: list[BrowserContext] = []

    async def signed_in_as(email: str) -> Page:
        context, page = await signed_in(browser, stack, email)
        contexts.append(context)
        page.on("dialog", lambda dialog: dialogs.append(dialog.message))
        return page

    found: dict[str, list[str]] = {}

    async def axe(page: Page, name: str) -> None:
        """axe-core's serious and critical findings on the page, kept to assert at the end."""
        if AXE.exists():
            found[name] = await violations(page)

    admin = await signed_in_as("ada@agency.example")
    await make_the_workflow(admin, agency.author.handle)
    await screens(admin, "workflows")
    await axe(admin, "/settings/workflows")

    # The editor writes the post: it waits for approval, and they may not approve it.
    editor = await signed_in_as("ed@agency.example")
    await editor.goto("/publish")
    await editor.get_by_label("Post", exact=True).fill(FIRST)
    await editor.get_by_role("checkbox", name=agency.author.handle).check()
    await editor.get_by_role("button", name="Schedule").click()
    await expect(editor).to_have_url(re.compile(r"/publish/posts/[^/#]+$"))
    post_page = editor.url
    await open_from_approvals(editor, "Every post in review", FIRST)
    assert editor.url == post_page
    state = editor.locator("#review-state")
    await expect(state).to_have_text("in review")
    await expect(editor.locator("#waiting-on")).to_be_visible()
    await expect(
        editor.get_by_text("You wrote this post: someone else approves it.")
    ).to_be_visible()
    assert await editor.get_by_role("button", name="Approve").count() == 0
    await axe(editor, "/publish/posts/… (the author's)")
    comment = "@ada is Friday right? <img src=x onerror=alert(1)>"
    await editor.get_by_label("Comment (for the team").fill(comment)
    await editor.get_by_role("button", name="Comment", exact=True).click()
    await expect(editor.locator(".comment .text").first).to_have_text(comment)

    # An approver asks for changes, with a reason, and answers the comment.
    await open_from_approvals(admin, "Waiting on you", FIRST)
    assert admin.url == post_page
    await expect(admin.locator("#waiting-on")).to_have_text("Waiting on you, bo@agency.example.")
    await admin.locator("details.reply summary").first.click()
    await admin.get_by_label("Your reply").fill("Yes, and say the time")
    await admin.get_by_role("button", name="Send the reply").click()
    await expect(admin.locator(".replies .comment .text")).to_have_text("Yes, and say the time")
    await axe(admin, "/publish/posts/… (an approver's)")
    await decide(admin, "Ask for changes", CHANGES)
    await expect(admin.locator("#review-state")).to_have_text("changes requested")
    await expect(admin.locator(".decisions")).to_contain_text(f"you asked for changes: “{CHANGES}”")

    # The editor edits it: a new version, whose review starts again.
    await editor.goto(post_page)
    await expect(editor.locator(".decisions")).to_contain_text(CHANGES)
    await editor.get_by_label("Text", exact=True).fill(EDITED)
    await editor.get_by_role("button", name="Save a new version").click()
    await expect(editor.get_by_role("region", name="What it says")).to_contain_text(EDITED)
    await expect(editor.locator("#review-state")).to_have_text("in review")
    await expect(editor.get_by_text(re.compile(r"^Version 2:"))).to_be_visible()

    # Both named approvers approve; the post then waits on the client.
    await admin.goto(post_page)
    await decide(admin, "Approve")
    second = await signed_in_as("bo@agency.example")
    await second.goto(post_page)
    await expect(second.get_by_role("region", name="What it says")).to_contain_text(EDITED)
    await decide(second, "Approve")
    await expect(second.locator("#waiting-on")).to_contain_text("an external reviewer")
    await expect(second.locator(".step.done")).to_contain_text("Team")

    # The account's admin (not the post's author: an author's link comments, never
    # approves) makes the client a link, shown once, in full.
    await admin.goto(post_page)
    await admin.get_by_label("Reviewer's name").fill("Carla <Client>")
    await admin.get_by_label("Works for (hours)").fill("48")
    await admin.get_by_role("button", name="Make a link").click()
    shown = admin.get_by_label("The reviewer's link")
    await expect(shown).to_have_value(re.compile(rf"^{re.escape(stack.url)}/review/\S+$"))
    link = await shown.input_value()
    await screens(admin, "review-link")

    # The client opens it with no account, sees only the post, and approves.
    client_context = await browser.new_context()
    contexts.append(client_context)
    client = await client_context.new_page()
    client.on("dialog", lambda dialog: dialogs.append(dialog.message))
    await client.goto(link)
    await expect(client.get_by_role("heading", name="A post to review")).to_be_visible()
    await expect(client.get_by_text("For Carla <Client>.")).to_be_visible()
    await expect(client.locator(".shared .text").first).to_have_text(EDITED)
    assert await client.get_by_role("navigation", name="Main").count() == 0
    await screens(client, "external-review")
    await axe(client, "/review/…")
    # Another site cannot make the reviewer's browser approve: the form needs its token.
    for form in ({"decision": "approve"}, {"decision": "approve", "csrf": "forged"}):
        refused = await client_context.request.post(link, form=form, max_redirects=0)
        assert refused.status == 403, await refused.text()
    forged = await client_context.new_page()
    await forged.goto(link[:-4] + "AAAA")
    await expect(forged.get_by_role("alert")).to_contain_text("This review link does not work")
    await client.reload()
    await expect(client.locator("#review-state")).to_have_text("in review")
    said = "Lovely! <b>Can we add the address?</b>"
    await client.get_by_label("Your comment").fill(said)
    await client.get_by_role("button", name="Comment", exact=True).click()
    await expect(client.get_by_role("status")).to_have_text("Your comment is posted.")
    mine = client.locator(".comment").filter(has_text=said)
    await expect(mine.locator(".byline")).to_have_text("Carla <Client>")
    await client.get_by_role("button", name="Approve").click()
    await expect(client.get_by_role("status")).to_have_text("Thank you: your approval is recorded.")
    await expect(client.locator("#review-state")).to_have_text("approved")

    # The approved version is what the PDS receives, and the post page says so.
    async def on_the_pds() -> bool:
        return await agency.pds.records(agency.author.did) == [EDITED]

    await until_s(on_the_pds, 20)
    await editor.goto(post_page)
    await expect(editor.locator("#review-state")).to_have_text("approved")
    history = editor.get_by_role("region", name="History")
    await expect(history.get_by_role("row").last).to_contain_text("published", timeout=10_000)
    await expect_audit_in_order(editor)
    await screens(editor, "post-approved")
    await axe(editor, "/publish/posts/… (approved)")
    await editor.goto("/approvals")
    await axe(editor, "/approvals")

    # The admin ends the post's links: the client's no longer works.
    await admin.goto(post_page)
    await admin.get_by_role("button", name="End every link to this post").click()
    await expect(admin.get_by_role("status")).to_contain_text("has ended")
    await client.goto(link)
    await expect(client.get_by_role("alert")).to_contain_text("This review link does not work")
    assert found == {page: [] for page in found}
    assert dialogs == []
    for context in contexts:
        await context.close()


async def expect_audit_in_order(page: Page) -> None:
    """The audit trail lists what was done, oldest first."""
    await page.reload()
    actions = page.locator("#audit tbody td.action")
    await expect(actions.first).to_be_visible()
    said = [line.strip() for line in await actions.all_inner_texts()]
    wanted = [
        "created", "commented", "asked for changes", "edited (a new version)", "approved",
        "approved", "made an external reviewer's link", "commented", "approved", "published",
    ]  # fmt: skip
    found = iter(said)
    assert all(action in found for action in wanted), said  # in this order, maybe with more
    async with page.expect_download() as downloading:
        await page.get_by_role("link", name="Download CSV").click()
    saved = await (await downloading.value).path()
    csv = await asyncio.to_thread(Path(saved).read_text)
    assert "changes_requested" in csv
    assert CHANGES in csv


async def until_s(check: Callable[[], Awaitable[bool]], seconds: float) -> None:
    """Poll `check` for up to `seconds` (publishing takes longer than `until` waits)."""
    for _ in range(int(seconds * 10)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the condition did not hold within {seconds} s")


async def test_workflows_are_an_admins_to_edit_and_a_rejection_needs_its_reason(
    tmp_path: Path, browser: Browser
) -> None:
    loopback = {"publish_allowed_networks": [ipaddress.ip_network("127.0.0.0/8")]}
    stack, resources = await start_stack(tmp_path, platform_settings=loopback)
    async with resources:
        owner = await stack.tenant("Agency")
        for email, role in (("ada@agency.example", "admin"), ("ed@agency.example", "editor")):
            await person(stack, owner, email, role)
        made = await stack.client.post(
            "/v1/channels",  # never published to: the post is rejected
            json={"network": "bluesky", "account": "agency.bsky.social",
                  "service": "http://127.0.0.1:9", "app_password": "abcd-efgh-ijkl-mnop"},
            headers=auth(owner["token"]),
        )  # fmt: skip
        assert made.status_code == 201, made.text
        admin_context, admin = await signed_in(browser, stack, "ada@agency.example")
        await admin.goto("/settings/workflows")
        new = admin.locator("form[action='/settings/workflows']")
        await new.get_by_label("Workflow name").fill("Editors' <posts>")
        await new.get_by_role("checkbox", name="editors").check()
        first = new.get_by_role("group", name="Step 1", exact=True)
        await first.get_by_role("checkbox", name="anyone who is admin").check()
        await new.get_by_role("button", name="Make the workflow").click()
        await expect(admin.get_by_role("alert")).to_have_text("Step 1 needs a name.")
        new = admin.locator("form[action='/settings/workflows']")
        await new.get_by_label("Workflow name").fill("Editors' <posts>")
        await new.get_by_role("checkbox", name="editors").check()
        first = new.get_by_role("group", name="Step 1", exact=True)
        await first.get_by_label("Name of step 1").fill("Lead")
        await first.get_by_role("checkbox", name="anyone who is admin").check()
        await new.get_by_role("button", name="Make the workflow").click()
        made_one = admin.get_by_role("article").filter(has_text="Editors' <posts>")
        await expect(made_one).to_contain_text("Lead: any one of anyone who is admin")

        # Edited: a second step, for a named person.
        await made_one.get_by_text("Edit Editors' <posts>").click()
        second = made_one.get_by_role("group", name="Step 2", exact=True)
        await second.get_by_label("Name of step 2").fill("Legal")
        await second.get_by_role("checkbox", name="ada@agency.example").check()
        await made_one.get_by_role("button", name="Save Editors' <posts>").click()
        await expect(made_one).to_contain_text("Legal: any one of ada@agency.example")

        # An editor neither sees nor manages workflows, and their post waits for them.
        editor_context, editor = await signed_in(browser, stack, "ed@agency.example")
        assert await editor.get_by_role("link", name="Workflows").count() == 0
        refused = await editor.goto("/settings/workflows")
        assert refused is not None
        assert refused.status == 403
        await editor.goto("/publish")
        await editor.get_by_label("Post", exact=True).fill("A post nobody should publish")
        await editor.get_by_role("checkbox", name="agency.bsky.social").check()
        await editor.get_by_role("button", name="Schedule").click()
        await expect(editor.locator("#review-state")).to_have_text("in review")
        await expect(editor.get_by_role("listitem").filter(has_text="Lead")).to_contain_text("now")

        # A rejection says why, or is refused.
        await admin.goto(editor.url)
        await decide(admin, "Reject")
        await expect(admin.get_by_role("alert")).to_contain_text("a reason is needed")
        await decide(admin, "Reject", "Off-brand <tone>")
        await expect(admin.locator("#review-state")).to_have_text("rejected")
        await expect(admin.locator(".decisions")).to_contain_text("“Off-brand <tone>”")
        assert await admin.get_by_role("button", name="Approve").count() == 0
        await admin.goto("/approvals")
        listed = admin.get_by_role("table", name="Every post in review")
        await expect(listed.get_by_role("row").filter(has_text="A post nobody")).to_contain_text(
            "rejected"
        )
        await screens(admin, "approvals")

        # Another tenant's admin sees none of it.
        other = await stack.tenant("Rival")
        await person(stack, other, "rita@rival.example", "admin")
        rival_context, rival = await signed_in(browser, stack, "rita@rival.example")
        await rival.goto("/settings/workflows")
        await expect(rival.get_by_text("No workflows")).to_be_visible()
        await rival.goto("/approvals")
        await expect(rival.get_by_text("No post is in review.")).to_be_visible()
        answer = await rival.goto(editor.url + "/review")
        assert answer is not None
        assert answer.status == 404

        # Deleted, it is gone.
        await admin.goto("/settings/workflows")
        await admin.get_by_role("button", name="Delete Editors' <posts>").click()
        await expect(admin.get_by_text("No workflows")).to_be_visible()
        for context in (admin_context, editor_context, rival_context):
            await context.close()
