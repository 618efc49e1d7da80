"""The Publish page's composer in a real Chromium, through the gateway: the preview of
a post on each chosen channel, counted as the server counts it (hubbub.publishing.text);
drafts kept as one types, even when the tab is closed; images with their alt text; and
each post's history of states. Whatever a person types is shown as text, never as HTML.
Screenshots go to `test-artifacts/screens/`."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Browser, Locator, Page, expect

from hubbub.publishing.text import graphemes, mastodon_length
from hubbub.sandbox.mastodon import InstanceConfig, Login, MastodonState, mastodon_server
from tests.browser.test_web_app import AXE, browser, person, screens, signed_in
from tests.conftest import until
from tests.support.browser import CHROMIUM
from tests.support.images import png
from tests.support.stack import Stack, auth, start_stack

__all__ = ["browser"]  # the fixture, shared with the other browser tests
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no browser at {CHROMIUM}")
MASTODON_LIMIT = 120
URL_LENGTH = 20
"""The instance's own `characters_reserved_per_url`, not Mastodon's default 23: the
preview must count what the channel says."""
AXE_SOURCE = AXE.read_text() if AXE.exists() else ""
TRICKY = [
    "👨‍👩‍👧 a family, joined",
    "e\u0301te\u0301, with combining accents",
    "🇫🇷🇩🇪 flags 👋🏽",
    "see https://example.com/" + "x" * 80 + ". and more",
    "(https://en.wikipedia.org/wiki/Python_(language)) and https://a.example/b)",
    "hi @bob@mastodon.social! and @alice.bsky.social #tag, #123",
    "nbsp\u00a0https://example.com/a next\u0085line https://example.com/b",
    "HTTPS://EXAMPLE.COM/SHOUTING and http://x.y",
    "한국어 텍스트 and नमस्ते",
    "e-mail ed@bob.example or https://x.example/@ed",
]


@dataclass
class Composing:
    """A stack with a Mastodon sandbox, a tenant with one Bluesky and one Mastodon
    channel, and an editor signed in on the Publish page."""

    stack: Stack
    owner: dict[str, str]
    state: MastodonState
    login: Login
    page: Page


@pytest.fixture
async def composing(tmp_path: Path, browser: Browser) -> AsyncIterator[Composing]:
    loopback = {"publish_allowed_networks": [ipaddress.ip_network("127.0.0.0/8")]}
    stack, resources = await start_stack(tmp_path, platform_settings=loopback)
    config = InstanceConfig(max_characters=MASTODON_LIMIT, characters_reserved_per_url=URL_LENGTH)
    state = MastodonState(config=config)
    login = state.add_account("newsroom")
    async with resources, mastodon_server(state) as server:
        owner = await stack.tenant("Newsroom")
        await person(stack, owner, "ed@newsroom.example", "editor")
        for body in (
            {"network": "mastodon", "account": "newsroom@127.0.0.1", "service": server.url,
             "access_token": login.access_token},
            # Bluesky's limits are the protocol's: the channel is not asked before a post.
            {"network": "bluesky", "account": "newsroom.bsky.social", "service": server.url,
             "app_password": "abcd-efgh-ijkl-mnop"},
        ):  # fmt: skip
            made = await stack.client.post("/v1/channels", json=body, headers=auth(owner["token"]))
            assert made.status_code == 201, made.text
        context, page = await signed_in(browser, stack, "ed@newsroom.example")
        await page.goto("/publish")
        for account in ("newsroom.bsky.social", "newsroom@127.0.0.1"):
            await page.get_by_role("checkbox", name=account).check()
        yield Composing(stack, owner, state, login, page)
        await context.close()


def preview(page: Page, network: str) -> Locator:
    """The preview of the post on the tenant's channel of `network`."""
    name = "newsroom.bsky.social (Bluesky)" if network == "bluesky" else "newsroom@127.0.0.1"
    return page.get_by_role("article", name=re.compile(re.escape(name)))


async def test_the_preview_counts_each_network_as_the_server_does(composing: Composing) -> None:
    page = composing.page
    box = page.get_by_label("Post", exact=True)
    bluesky, mastodon = preview(page, "bluesky"), preview(page, "mastodon")
    for text in TRICKY:
        await box.fill(text)
        await expect(bluesky.locator(".count")).to_have_text(f"{graphemes(text)} / 300 graphemes")
        counted = mastodon_length(text, URL_LENGTH)
        await expect(mastodon.locator(".count")).to_have_text(
            f"{counted} / {MASTODON_LIMIT} characters"
        )
        await expect(bluesky.locator(".text")).to_have_text(text)  # as written

    await box.fill("x" * 301)
    await expect(bluesky.locator(".count")).to_have_text("301 / 300 graphemes · 1 over")
    await expect(bluesky).to_have_class(re.compile(r"\bover\b"))
    await expect(mastodon.locator(".count")).to_have_text(
        f"301 / {MASTODON_LIMIT} characters · {301 - MASTODON_LIMIT} over"
    )
    await expect(page.locator("#preview-summary")).to_contain_text("Does not fit")
    await box.fill("👨‍👩‍👧" * 300)  # 300 graphemes, 1,500 code points
    await expect(bluesky.locator(".count")).to_have_text("300 / 300 graphemes")
    await expect(bluesky).not_to_have_class(re.compile(r"\bover\b"))
    await screens(page, "composer-over")


async def test_mentions_links_and_tags_are_marked_and_html_stays_text(
    composing: Composing,
) -> None:
    page = composing.page
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    text = (
        "<script>alert(1)</script> <img src=x onerror=alert(2)> hello @alice.bsky.social"
        " #news https://example.com/a/very/long/path/that/mastodon/cuts."
    )
    await page.get_by_label("Post", exact=True).fill(text)
    bluesky, mastodon = preview(page, "bluesky"), preview(page, "mastodon")
    await expect(bluesky.locator(".text")).to_have_text(text)
    await expect(bluesky.locator(".mention")).to_have_text("@alice.bsky.social")
    await expect(bluesky.locator(".tag")).to_have_text("#news")
    await expect(bluesky.locator(".link")).to_have_text(
        "https://example.com/a/very/long/path/that/mastodon/cuts"
    )
    await expect(mastodon.locator(".link")).to_have_text("example.com/a/very/long/path/t…")
    assert await page.locator("#previews img, #previews script").count() == 0

    await page.get_by_role("button", name="Add a part").click()
    await page.get_by_label("Part 2").fill("and the second part, #2")
    await expect(bluesky.get_by_text("Part 2 of 2")).to_be_visible()
    await expect(bluesky.locator(".count").nth(1)).to_have_text("23 / 300 graphemes")
    await screens(page, "composer-preview")
    assert dialogs == []


async def test_a_draft_outlives_its_closed_tab_and_scheduling_it_removes_it(
    composing: Composing, browser: Browser
) -> None:
    stack, page = composing.stack, composing.page
    await page.get_by_label("Post", exact=True).fill("A draft about <b>the storm</b>")
    await page.get_by_role("button", name="Add a part").click()
    await page.get_by_label("Part 2").fill("more on it")
    await expect(page.locator("#draft-status")).to_have_text("Saved as a draft.")
    await page.get_by_label("Part 2").fill("more on it, typed just before closing")
    await page.close(run_before_unload=True)  # within the wait: saved as the page goes

    async def kept() -> bool:
        drafts = await stack.client.get("/v1/drafts", headers=auth(composing.owner["token"]))
        found = drafts.json() if drafts.status_code == 200 else []
        return any(d.get("thread") == ["more on it, typed just before closing"] for d in found)

    context, again = await signed_in(browser, stack, "ed@newsroom.example")
    await again.goto("/publish")
    drafts = again.get_by_role("region", name="Drafts")
    await expect(drafts).to_contain_text("A draft about <b>the storm</b>")  # as text
    await again.get_by_role("link", name=re.compile("^Open the draft")).click()
    await expect(again.get_by_label("Post", exact=True)).to_have_value(
        "A draft about <b>the storm</b>"
    )
    await expect(again.get_by_label("Part 2")).to_have_value(
        "more on it, typed just before closing"
    )
    await expect(again.get_by_role("checkbox", name="newsroom.bsky.social")).to_be_checked()
    await screens(again, "composer-draft")
    await again.get_by_role("checkbox", name="newsroom.bsky.social").uncheck()
    await again.get_by_role("checkbox", name="newsroom@127.0.0.1").check()
    await again.get_by_role("button", name="Schedule").click()
    await expect(again.get_by_role("status")).to_have_text("Scheduled to 1 channel.")
    await expect(again.get_by_text("No drafts.")).to_be_visible()
    assert not await kept()
    await context.close()


async def test_a_post_shows_its_history_of_states(composing: Composing) -> None:
    stack, owner, page = composing.stack, composing.owner, composing.page
    state, login = composing.state, composing.login
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    # A channel whose name is HTML, on a server that is no PDS: its job fails.
    odd = "<img src=x onerror=alert(1)>.bsky.social"
    made = await stack.client.post(
        "/v1/channels",
        json={"network": "bluesky", "account": odd, "service": state_url(page),
              "app_password": "abcd-efgh-ijkl-mnop"},
        headers=auth(owner["token"]),
    )  # fmt: skip
    assert made.status_code == 201, made.text
    await page.goto("/publish")
    await page.get_by_role("checkbox", name="newsroom.bsky.social").uncheck()
    for account in ("newsroom@127.0.0.1", odd):
        await page.get_by_role("checkbox", name=account).check()
    await page.get_by_label("Post", exact=True).fill("Storm update & more")
    await page.get_by_role("button", name="Schedule").click()
    await expect(page.get_by_role("status")).to_have_text("Scheduled to 2 channels.")

    async def published() -> bool:
        return [s.text for s in state.statuses_by(login.account)] == ["Storm update & more"]

    await until(published)
    await page.get_by_role("link", name=re.compile("^History of the post .* newsroom@")).click()
    await expect(page).to_have_url(re.compile(r"/publish/posts/[^/]+$"))
    said = page.get_by_role("region", name="What it says")
    await expect(said).to_contain_text("Storm update & more")  # the post itself, as written
    mastodon = page.get_by_role("row").filter(has_text="newsroom@127.0.0.1")
    await expect(mastodon.first).to_contain_text("scheduled")
    await expect(mastodon.last).to_contain_text("published", timeout=10_000)
    failing = page.get_by_role("row").filter(has_text=odd)  # the name, as text
    await expect(failing.first).to_contain_text("scheduled")
    await expect(page.get_by_role("listitem").filter(has_text=odd)).to_have_count(1)
    assert "<img src=x" not in await page.content()
    await screens(page, "post-history")
    assert dialogs == []


def state_url(page: Page) -> str:
    """The web app's own address: a server that answers, but as no PDS does."""
    return re.sub(r"^(https?://[^/]+).*$", r"\1", page.url)


async def test_images_are_counted_and_a_missing_alt_text_flagged(
    composing: Composing, tmp_path: Path
) -> None:
    page = composing.page
    image = tmp_path / "chart.png"
    image.write_bytes(png(seed=1))
    await page.get_by_label("Post", exact=True).fill("A chart")
    for alt in ("A rising line", ""):
        await page.get_by_label("Image (PNG").set_input_files(image)
        await page.get_by_label("Alt text").fill(alt)
        await page.get_by_role("button", name="Attach the image").click()
        await expect(page.locator("#image-status")).to_have_text(
            "Attached." if alt else "Attached, with no alt text."
        )
    bluesky = preview(page, "bluesky")
    await expect(bluesky.locator(".count").nth(1)).to_have_text("2 / 4 images · 1 without alt text")
    await expect(page.get_by_text("No alt text", exact=True)).to_be_visible()
    await page.get_by_role("button", name="Remove the image chart.png").last.click()
    await expect(bluesky.locator(".count").nth(1)).to_have_text("1 / 4 images")


async def test_the_composer_and_a_posts_history_pass_axe(composing: Composing) -> None:
    if not AXE.exists():
        pytest.skip(f"axe-core is not at {AXE}: `make test` fetches it")
    page = composing.page
    await page.get_by_label("Post", exact=True).fill("Hello @alice.bsky.social " + "x" * 300)
    await page.get_by_role("button", name="Add a part").click()
    await page.get_by_label("Part 2").fill("the end")
    await expect(page.locator("#draft-status")).to_have_text("Saved as a draft.")
    found = {"/publish (writing)": await violations(page)}
    await page.get_by_role("checkbox", name="newsroom.bsky.social").uncheck()
    await page.get_by_label("Post", exact=True).fill("Hello")
    await page.get_by_role("button", name="Schedule").click()
    await page.get_by_role("link", name=re.compile("^History of the post")).first.click()
    found["/publish/posts/…"] = await violations(page)
    await page.goto("/publish")
    found["/publish (with a draft)"] = await violations(page)
    assert found == {path: [] for path in found}


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


async def test_a_content_warning_visibility_and_language_reach_mastodon(
    composing: Composing,
) -> None:
    page, state, login = composing.page, composing.state, composing.login
    await page.get_by_role("checkbox", name="newsroom.bsky.social").uncheck()
    await page.get_by_role("checkbox", name="newsroom@127.0.0.1").check()
    await page.get_by_label("Post", exact=True).fill("Ending of the finale")
    await page.get_by_label("Language").fill("pt-BR")
    await page.get_by_label("Content warning").fill("Spoilers")
    await page.get_by_label("Who sees it").select_option("unlisted")
    await expect(page.locator("#draft-status")).to_have_text("Saved as a draft.")
    await page.reload()  # the draft keeps them too
    await page.get_by_role("link", name=re.compile("^Open the draft")).first.click()
    await expect(page.get_by_label("Content warning")).to_have_value("Spoilers")
    await expect(page.get_by_label("Who sees it")).to_have_value("unlisted")
    await page.get_by_role("button", name="Schedule").click()
    await expect(page.get_by_role("status")).to_have_text("Scheduled to 1 channel.")

    async def published() -> bool:
        return bool(state.statuses_by(login.account))

    await until(published)
    (status,) = state.statuses_by(login.account)
    assert (status.text, status.spoiler_text) == ("Ending of the finale", "Spoilers")
    assert (status.visibility, status.language) == ("unlisted", "pt-BR")
