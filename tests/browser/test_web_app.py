"""The web app in a real Chromium (Debian's, driven by Playwright), through the gateway,
as a person uses it: signing in, the compose box, reports, settings, invitations; and
what must hold whatever a page is sent: sessions, CSRF protection, escaping, tenants
kept apart. Screenshots of each page, at desktop and phone widths, go to
`test-artifacts/screens/`."""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    Locator,
    Page,
    async_playwright,
    expect,
)

from hubbub.analytics.alerts import Alert
from hubbub.kernel.events import AlertRaised, PageSeen, PostPublished
from hubbub.sandbox.mastodon import MastodonState, mastodon_server
from tests.conftest import until
from tests.support.browser import CHROMIUM, LAUNCH_ARGS
from tests.support.stack import OPERATOR, Stack, auth, start_stack

PASSWORD = "correct horse battery"
ROOT = Path(__file__).resolve().parents[2]
SCREENS = ROOT / "test-artifacts" / "screens"
AXE = ROOT / ".venv" / "axe-core" / "axe.min.js"
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no browser at {CHROMIUM}")


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    built, resources = await start_stack(tmp_path)
    async with resources:
        yield built


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield launched
        await launched.close()


async def person(stack: Stack, owner: dict[str, str], email: str, role: str) -> None:
    """`email` joins the owner's tenant with `role` and `PASSWORD`, through the API."""
    made = await stack.client.post(
        "/v1/invites", json={"email": email, "role": role}, headers=auth(owner["token"])
    )
    link = made.json()["token"]
    joined = await stack.client.post(f"/v1/invitations/{link}/accept", json={"password": PASSWORD})
    assert joined.status_code == 201, joined.text


async def signed_in(browser: Browser, stack: Stack, email: str) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(base_url=stack.url, accept_downloads=True)
    page = await context.new_page()
    await page.goto("/")
    await expect(page).to_have_url(f"{stack.url}/signin")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{stack.url}/")
    return context, page


def nav(page: Page, name: str) -> Locator:
    """A link of the main navigation."""
    return page.get_by_role("navigation", name="Main").get_by_role("link", name=name)


async def screens(page: Page, name: str) -> None:
    """The page as it is, at desktop and phone widths."""
    SCREENS.mkdir(parents=True, exist_ok=True)
    for width, height, label in ((1280, 800, "desktop"), (390, 844, "phone")):
        await page.set_viewport_size({"width": width, "height": height})
        await page.screenshot(path=SCREENS / f"{name}-{label}.png", full_page=True)
    await page.set_viewport_size({"width": 1280, "height": 800})


async def test_a_person_signs_in_sees_their_workspace_and_signs_out(
    stack: Stack, browser: Browser
) -> None:
    owner = await stack.tenant("Newsroom")
    await person(stack, owner, "ed@newsroom.example", "editor")
    context = await browser.new_context(base_url=stack.url)
    page = await context.new_page()
    await page.goto("/reports")
    await expect(page).to_have_url(f"{stack.url}/signin")  # no session: sign in first
    await screens(page, "signin")
    await page.get_by_label("Email").fill("ed@newsroom.example")
    await page.get_by_label("Password").fill("not my password")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_have_text("wrong email or password")

    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Newsroom")
    health = page.locator("#health")
    await expect(health).to_contain_text("mentions ok")
    await stack.servers["mentions"].__aexit__(None, None, None)  # the mentions role stops
    await stack.gateway.health.check()
    await expect(health).to_contain_text("mentions down", timeout=10_000)  # live, no reload
    cookie = next(c for c in await context.cookies() if c["name"] == "hubbub_session")
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Lax"
    await screens(page, "overview")

    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(f"{stack.url}/signin")
    await page.goto("/")
    await expect(page).to_have_url(f"{stack.url}/signin")
    await context.close()


async def test_typing_at_in_the_compose_box_suggests_pages_chosen_by_keyboard(
    stack: Stack, browser: Browser
) -> None:
    owner = await stack.tenant("Newsroom")
    await person(stack, owner, "ed@newsroom.example", "editor")
    await stack.platform.event_log.append(
        [
            PageSeen(id=f"seen-{n}", key=did, ts=1, source="test", page=did, handle=handle,
                     display_name=name, followers_count=followers)
            for n, (did, handle, name, followers) in enumerate([
                ("did:plc:swift", "taylorswift.bsky.social", "Taylor Swift", 900_000),
                ("did:plc:otwell", "taylorotwell.bsky.social", "Taylor Otwell", 90_000),
                ("did:plc:evil", "tayevil.bsky.social", "<img src=x onerror=alert(1)>", 5),
            ])
        ]
    )  # fmt: skip
    context, page = await signed_in(browser, stack, "ed@newsroom.example")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    await nav(page, "Mentions").click()
    box = page.get_by_role("combobox", name="Post")
    await box.press_sequentially("Hello @tay", delay=30)
    options = page.get_by_role("option")
    await expect(options).to_have_count(3)
    await expect(options.first).to_contain_text("@taylorswift.bsky.social")
    await expect(options.nth(2)).to_contain_text("<img src=x onerror=alert(1)>")  # as text
    await screens(page, "mentions")
    await box.press("ArrowDown")
    await expect(options.nth(1)).to_have_attribute("aria-selected", "true")
    await box.press("Enter")
    await expect(box).to_have_value("Hello @taylorotwell.bsky.social ")
    await expect(page.get_by_role("listbox")).to_be_hidden()
    assert dialogs == []
    timings = await page.evaluate("window.hubbubTimings")
    assert timings
    assert all(t > 0 for t in timings)
    await context.close()


async def test_a_report_keeps_its_window_in_the_address_and_downloads_as_csv(
    stack: Stack, browser: Browser
) -> None:
    owner = await stack.tenant("Newsroom")
    await person(stack, owner, "ed@newsroom.example", "viewer")
    now_us = time.time_ns() // 1000
    await stack.platform.event_log.append(
        [
            PostPublished(id=f"p{n}", key="did:plc:a", ts=now_us, source="test",
                          post=f"at://did:plc:a/app.bsky.feed.post/{n}", author="did:plc:a",
                          text="quake", tags=["quake"] if n % 3 else ["flood"])
            for n in range(9)
        ]
    )  # fmt: skip
    week = {"start": "2026-01-01T00:00:00Z", "end": "2100-01-01T00:00:00Z"}

    async def folded() -> bool:  # the analytics worker has counted them
        answer = await stack.client.get(
            "/v1/reports/top/hashtags", params=week, headers=auth(owner["token"])
        )
        return len(answer.json()) == 2

    await until(folded)
    context, page = await signed_in(browser, stack, "ed@newsroom.example")
    await nav(page, "Reports").click()
    await expect(page.get_by_role("cell", name="quake")).to_be_visible()
    rows = page.get_by_role("row")
    await expect(rows.nth(1)).to_contain_text("quake")
    await expect(rows.nth(1)).to_contain_text("6")
    await screens(page, "reports")

    await page.get_by_label("From").fill("2026-01-01")
    await page.get_by_label("Report").select_option("mentioned")
    await page.get_by_role("button", name="Show").click()
    await expect(page).to_have_url(
        re.compile(r"/reports\?what=mentioned&start=2026-01-01&end=\d{4}-\d{2}-\d{2}$")
    )
    await expect(page.get_by_role("heading", level=1)).to_have_text("Most mentioned pages")

    await page.goto("/reports?what=hashtags")
    async with page.expect_download() as waiting:
        await page.get_by_role("link", name="Download CSV").click()
    download = await waiting.value
    assert download.suggested_filename.startswith("top-hashtags-")
    lines = (await download.path()).read_text().splitlines()
    assert lines[0] == "rank,key,count"
    assert lines[1:] == ["1,quake,6", "2,flood,3"]

    await page.get_by_role("link", name="A series over time").click()
    await page.get_by_label("Hashtag, page id or words").fill("quake")
    await page.get_by_label("Per").select_option("day")
    await page.get_by_role("button", name="Show").click()
    await expect(page).to_have_url(re.compile(r"kind=hashtag&key=quake&bucket=day"))
    await expect(page.locator("#series-chart canvas")).to_have_count(1)  # uPlot drew it
    await expect(page.get_by_role("cell", name="6", exact=True)).to_have_count(1)
    await screens(page, "series")

    await page.goto("/reports/page?start=2026-01-01")
    await page.get_by_label("Page id").fill("did:plc:a")
    await page.get_by_role("button", name="Show").click()
    await expect(page).to_have_url(re.compile(r"/reports/page\?page=did%3Aplc%3Aa&start=2026"))
    await expect(page.get_by_role("row").nth(1)).to_contain_text("9")  # its posts
    await screens(page, "page-summary")
    async with page.expect_download() as waiting:
        await page.get_by_role("link", name="Download CSV").click()
    lines = (await (await waiting.value).path()).read_text().splitlines()
    assert lines[0].startswith("page,posts,")
    assert lines[1].startswith("did:plc:a,9,")
    await context.close()


async def test_an_owner_invites_someone_who_joins_by_the_link(
    stack: Stack, browser: Browser
) -> None:
    owner = await stack.tenant("Newsroom")
    await person(stack, owner, "boss@newsroom.example", "owner")
    context, page = await signed_in(browser, stack, "boss@newsroom.example")
    await nav(page, "Settings").click()
    await page.get_by_label("Email", exact=True).fill("new@newsroom.example")
    await page.get_by_label("Role", exact=True).first.select_option("editor")
    await page.get_by_role("button", name="Invite").click()
    link = await page.get_by_label("Invitation link").input_value()
    assert link.startswith(f"{stack.url}/invite/")
    await screens(page, "settings")

    newcomer = await browser.new_context()
    joining = await newcomer.new_page()
    await joining.goto(link)
    await expect(joining.get_by_text("new@newsroom.example")).to_be_visible()
    await screens(joining, "invite")
    await joining.get_by_label("Password").fill(PASSWORD)
    await joining.get_by_role("button", name="Join").click()
    await expect(joining.get_by_role("heading", level=1)).to_have_text("Newsroom")
    await expect(joining.get_by_text("new@newsroom.example (editor)")).to_be_visible()
    await joining.goto(link)  # a link works once
    await expect(joining.get_by_role("alert")).to_contain_text("used already")
    await newcomer.close()

    await page.goto("/settings")  # the owner makes the newcomer a viewer
    await page.get_by_label("Role of new@newsroom.example", exact=True).select_option("viewer")
    await page.get_by_role("button", name="Change the role of new@newsroom.example").click()
    await expect(page.get_by_role("status")).to_have_text("new@newsroom.example is viewer now.")
    users = (await stack.client.get("/v1/users", headers=auth(owner["token"]))).json()
    assert {u["email"]: u["role"] for u in users}["new@newsroom.example"] == "viewer"
    await context.close()


async def test_a_revoked_key_stops_and_names_are_shown_as_text(
    stack: Stack, browser: Browser
) -> None:
    owner = await stack.tenant("Newsroom")
    await person(stack, owner, "boss@newsroom.example", "owner")
    context, page = await signed_in(browser, stack, "boss@newsroom.example")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    await page.goto("/settings")
    name = "<script>alert('key')</script>"
    await page.get_by_role("region", name="API keys").get_by_label("Name").fill(name)
    await page.get_by_role("button", name="Make a key").click()
    token = await page.get_by_label("The new key").input_value()
    assert (await stack.client.get("/v1/mentions?q=a", headers=auth(token))).status_code == 200
    await expect(page.get_by_role("cell", name=name, exact=True)).to_be_visible()  # as text
    assert name not in await page.content()  # escaped wherever it is written

    await page.get_by_role("button", name=f"Revoke the key {name}").click()
    await expect(page.get_by_role("status")).to_contain_text("revoked")
    assert (await stack.client.get("/v1/mentions?q=a", headers=auth(token))).status_code == 401
    assert dialogs == []
    await context.close()


async def test_a_form_without_its_csrf_token_is_refused(stack: Stack, browser: Browser) -> None:
    owner = await stack.tenant("Newsroom")
    await person(stack, owner, "boss@newsroom.example", "owner")
    context, page = await signed_in(browser, stack, "boss@newsroom.example")
    await page.goto("/settings")
    keys_before = len((await stack.client.get("/v1/keys", headers=auth(owner["token"]))).json())
    forged = await page.evaluate(
        """async () => {
            const form = new FormData();
            form.append("name", "forged");
            form.append("role", "owner");
            form.append("csrf", "not-the-token");
            const answer = await fetch("/settings/keys", {method: "POST", body: form});
            return [answer.status, await answer.text()];
        }"""
    )
    assert forged[0] == 403
    assert "stale or forged" in forged[1]
    # From another site, the browser does not even send the session (SameSite=Lax).
    other = await browser.new_context()
    attacker = await other.new_page()
    await attacker.set_content(
        f'<form method="post" action="{stack.url}/settings/keys">'
        '<input name="name" value="forged"><input name="role" value="owner"></form>'
    )
    await attacker.evaluate("document.forms[0].submit()")
    await attacker.wait_for_load_state()
    keys_after = len((await stack.client.get("/v1/keys", headers=auth(owner["token"]))).json())
    assert keys_after == keys_before
    await other.close()
    await context.close()


async def test_a_second_tenant_sees_none_of_the_firsts(stack: Stack, browser: Browser) -> None:
    first, second = await stack.tenant("Newsroom"), await stack.tenant("Rival")
    await person(stack, first, "boss@newsroom.example", "owner")
    await person(stack, second, "boss@rival.example", "owner")
    secret_key = await stack.made_key(first, "viewer")
    context, page = await signed_in(browser, stack, "boss@rival.example")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Rival")
    await page.goto("/settings")
    body = await page.locator("main").inner_text()
    assert "newsroom.example" not in body
    assert secret_key["id"] not in await page.content()
    answer = await page.evaluate(
        """async ([id, token]) => {
            const form = new FormData();
            form.append("csrf", token);
            const answer = await fetch(`/settings/keys/${id}/revoke`, {method: "POST", body: form});
            return answer.status;
        }""",
        [secret_key["id"], await page.locator("input[name=csrf]").first.input_value()],
    )
    assert answer == 404
    keys = (await stack.client.get("/v1/keys", headers=auth(first["token"]))).json()
    assert next(k for k in keys if k["id"] == secret_key["id"])["revoked_at"] is None
    await context.close()


async def test_every_page_passes_axe_with_no_serious_or_critical_violation(
    stack: Stack, browser: Browser
) -> None:
    if not AXE.exists():
        pytest.skip(f"axe-core is not at {AXE}: `make test` fetches it")
    owner = await stack.tenant("Newsroom")
    await person(stack, owner, "boss@newsroom.example", "owner")
    made = await stack.client.post(
        "/v1/invites", json={"email": "new@newsroom.example"}, headers=auth(owner["token"])
    )
    invitation = f"/invite/{made.json()['token']}"
    context = await browser.new_context(base_url=stack.url, bypass_csp=True)  # to inject axe
    page = await context.new_page()
    found: dict[str, list[str]] = {}

    async def check(path: str) -> None:
        await page.goto(path)
        await page.add_script_tag(path=str(AXE))
        violations = await page.evaluate(
            """async () => (await axe.run()).violations
                 .filter(v => v.impact === "serious" || v.impact === "critical")
                 .map(v => `${v.id}: ${v.help} (${v.nodes.length})`)"""
        )
        found[path] = violations

    for path in ("/signin", invitation):
        await check(path)
    await page.goto("/signin")
    await page.get_by_label("Email").fill("boss@newsroom.example")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{stack.url}/")
    for path in ("/", "/mentions", "/reports", "/reports/series?key=python",
                 "/reports/page?page=did:plc:a", "/publish", "/alerts", "/settings"):  # fmt: skip
        await check(path)
    await page.get_by_role("button", name="Sign out", exact=True).click()
    await check("/signin/operator")
    await page.get_by_label("Operator token").fill(OPERATOR)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{stack.url}/operator")
    await check("/operator")
    assert found == {path: [] for path in found}
    await context.close()


async def test_a_watch_added_in_the_app_shows_its_alert_as_it_is_raised(
    stack: Stack, browser: Browser
) -> None:
    owner = await stack.tenant("Newsroom")
    await person(stack, owner, "ed@newsroom.example", "editor")
    context, page = await signed_in(browser, stack, "ed@newsroom.example")
    await nav(page, "Alerts").click()
    await expect(page.get_by_text("Nothing is watched.")).to_be_visible()
    await page.get_by_label("Hashtag, page id or words").fill("#Quake")
    await page.get_by_role("button", name="Watch").click()
    row = page.get_by_role("row").filter(has_text="quake")
    await expect(row).to_contain_text("medium")
    await screens(page, "alerts")
    (watch,) = (await stack.client.get("/v1/watches", headers=auth(owner["token"]))).json()

    # The spike monitor raises an alert: it is an event on the log, as the monitor
    # appends it; the page, left open, shows it without a reload.
    minute = time.time_ns() // 60_000_000_000
    alert = Alert(owner["id"], watch["id"], "hashtag", "quake", minute, 140, 10.0, 20.0)
    await stack.platform.event_log.append(
        [AlertRaised(id=f"alert-{minute}", key=owner["id"], ts=minute * 60_000_000,
                     source="analytics", name="spike:hashtag:quake",
                     message=msgspec.json.encode(alert).decode())]
    )  # fmt: skip
    live = page.locator("#alerts-list")
    await expect(live).to_contain_text("hashtag quake", timeout=10_000)
    await expect(live).to_contain_text("140")

    # The sensitivity changes in place: the same watch, now high.
    await page.get_by_label("Sensitivity of hashtag quake", exact=True).select_option("high")
    await page.get_by_role("button", name="Change the sensitivity of hashtag quake").click()
    await expect(page.get_by_label("Sensitivity of hashtag quake", exact=True)).to_have_value(
        "high"
    )
    (changed,) = (await stack.client.get("/v1/watches", headers=auth(owner["token"]))).json()
    assert (changed["id"], changed["sensitivity"]) == (watch["id"], "high")

    await page.get_by_role("button", name="Stop watching hashtag quake").click()
    await expect(page.get_by_text("Nothing is watched.")).to_be_visible()
    await context.close()


async def test_a_webhook_is_added_with_its_secret_shown_once_and_never_to_inside(
    stack: Stack, browser: Browser
) -> None:
    owner = await stack.tenant("Newsroom")
    await person(stack, owner, "ed@newsroom.example", "editor")
    context, page = await signed_in(browser, stack, "ed@newsroom.example")
    await page.goto("/alerts")
    await page.get_by_label("Address (https://…)").fill("http://127.0.0.1:6379/")
    await page.get_by_role("button", name="Add webhook").click()
    await expect(page.get_by_role("alert")).to_contain_text("127.0.0.1")  # an inside address
    url = "https://hooks.newsroom.example/alerts"
    await page.get_by_label("Address (https://…)").fill(url)
    await page.get_by_role("button", name="Add webhook").click()
    secret = await page.locator("#webhook-secret").inner_text()
    assert len(secret) >= 32
    await expect(page.get_by_role("cell", name=url, exact=True)).to_be_visible()
    await page.goto("/alerts")
    assert secret not in await page.content()  # shown that once
    await page.get_by_role("button", name=f"Stop sending alerts to {url}").click()
    await expect(page.get_by_text("No webhooks")).to_be_visible()
    assert (await stack.client.get("/v1/webhooks", headers=auth(owner["token"]))).json() == []
    await context.close()


async def test_the_operator_makes_workspaces_and_sets_platform_flags_and_routes(
    stack: Stack, browser: Browser
) -> None:
    owner = await stack.tenant("Newsroom")
    await person(stack, owner, "boss@newsroom.example", "owner")
    context, page = await signed_in(browser, stack, "boss@newsroom.example")
    assert (await page.goto("/operator")).status == 404  # a workspace's owner is no operator
    await context.close()

    context = await browser.new_context(base_url=stack.url)
    page = await context.new_page()
    await page.goto("/signin")
    await page.get_by_role("link", name="Sign in as the operator").click()
    await page.get_by_label("Operator token").fill("not the token")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_have_text("wrong operator token")
    await page.get_by_label("Operator token").fill(OPERATOR)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{stack.url}/operator")
    await expect(page.locator("#health")).to_contain_text("mentions ok")
    await expect(page.locator("#ingest-rate")).to_contain_text("events a second", timeout=10_000)
    await page.goto("/")  # the operator has no workspace: its home is the platform's page
    await expect(page).to_have_url(f"{stack.url}/operator")

    await page.get_by_label("Name", exact=True).first.fill("Agency <b>&</b>")
    await page.get_by_role("button", name="Make a workspace").click()
    key = await page.locator("#owner-key").inner_text()
    made = await stack.client.get("/v1/tenant", headers=auth(key))
    assert made.json()["name"] == "Agency <b>&</b>"  # the owner key works; the name is text
    await expect(page.get_by_role("cell", name="Agency <b>&</b>", exact=True)).to_be_visible()

    flags = page.get_by_role("region", name="Feature flags")
    await flags.get_by_label("Name").fill("new-composer")
    await flags.get_by_label("Rolled out to (%)").fill("10")
    await page.get_by_role("button", name="Set the flag").click()
    await expect(page.get_by_role("row").filter(has_text="new-composer")).to_contain_text("10")
    (flag,) = (await stack.client.get("/v1/platform/flags", headers=auth(OPERATOR))).json()
    assert (flag["name"], flag["percent"]) == ("new-composer", 10.0)

    await page.get_by_label("Prefix").fill("/v1/mentions")
    await page.get_by_label("Send to").select_option("legacy")
    await page.get_by_role("button", name="Set the route").click()
    mentions = await stack.client.get("/v1/mentions?q=a", headers=auth(owner["token"]))
    assert mentions.json()["from"] == "legacy"
    await screens(page, "operator")
    await page.get_by_role("button", name="Send /v1/mentions back to its service").click()
    await expect(page.get_by_role("status")).to_contain_text("goes back to its service")
    mentions = await stack.client.get("/v1/mentions?q=a", headers=auth(owner["token"]))
    assert mentions.status_code == 200
    assert isinstance(mentions.json(), list)
    await context.close()


async def test_a_connector_token_is_kept_unseen_and_a_flag_is_set_from_settings(
    stack: Stack, browser: Browser
) -> None:
    owner, rival = await stack.tenant("Newsroom"), await stack.tenant("Rival")
    await person(stack, owner, "boss@newsroom.example", "owner")
    context, page = await signed_in(browser, stack, "boss@newsroom.example")
    await page.goto("/settings")
    secret = "mastodon-access-token-that-must-never-show"
    await page.get_by_label("Mastodon instance").fill("mastodon.social")
    await page.get_by_label("Access token").fill(secret)
    await page.get_by_role("button", name="Keep the token").click()
    await expect(page.get_by_role("status")).to_contain_text("kept, sealed")
    await expect(page.get_by_role("cell", name="mastodon.social", exact=True)).to_be_visible()
    assert secret not in await page.content()
    listed = await stack.client.get("/v1/connectors", headers=auth(owner["token"]))
    assert [c["account"] for c in listed.json()] == ["mastodon.social"]
    assert secret not in listed.text
    assert (await stack.client.get("/v1/connectors", headers=auth(rival["token"]))).json() == []

    await page.get_by_role("region", name="Feature flags").get_by_label("Name").fill("new-composer")
    await page.get_by_label("Rolled out to (%)").fill("25")
    await page.get_by_role("button", name="Set the flag").click()
    await expect(page.get_by_role("row").filter(has_text="new-composer")).to_contain_text("25")
    (flag,) = (await stack.client.get("/v1/flags", headers=auth(owner["token"]))).json()
    assert (flag["name"], flag["percent"], flag["enabled"]) == ("new-composer", 25.0, True)
    await page.get_by_role("button", name="Remove the flag new-composer").click()
    await expect(page.get_by_text("No flags of this workspace.")).to_be_visible()
    await context.close()


async def test_the_overview_counts_todays_posts_of_the_watched_pages(
    stack: Stack, browser: Browser
) -> None:
    owner = await stack.tenant("Newsroom")
    await person(stack, owner, "ed@newsroom.example", "viewer")
    watched = await stack.client.post(
        "/v1/watches",
        json={"kind": "page", "target": "did:plc:mayor"},
        headers=auth(owner["token"]),
    )
    assert watched.status_code == 201
    now_us = time.time_ns() // 1000
    await stack.platform.event_log.append(
        [
            PostPublished(id=f"m{n}", key="did:plc:mayor", ts=now_us, source="test",
                          post=f"at://did:plc:mayor/app.bsky.feed.post/{n}",
                          author="did:plc:mayor", text="town hall tonight")
            for n in range(3)
        ]
    )  # fmt: skip

    async def folded() -> bool:
        today = {"start": "2026-01-01T00:00:00Z", "end": "2100-01-01T00:00:00Z"}
        answer = await stack.client.get(
            "/v1/reports/pages/did:plc:mayor/summary", params=today, headers=auth(owner["token"])
        )
        return bool(answer.json()[0]["posts"] == 3)

    await until(folded)
    context, page = await signed_in(browser, stack, "ed@newsroom.example")
    row = page.get_by_role("row").filter(has_text="did:plc:mayor")
    await expect(row).to_contain_text("3")
    await context.close()


async def test_a_post_is_written_with_a_mention_scheduled_and_published_from_the_app(
    tmp_path: Path, browser: Browser
) -> None:
    loopback = {"publish_allowed_networks": [ipaddress.ip_network("127.0.0.0/8")]}
    built, resources = await start_stack(tmp_path, platform_settings=loopback)
    state = MastodonState()
    login = state.add_account("newsroom")
    async with resources, mastodon_server(state) as server:
        stack = built
        owner = await stack.tenant("Newsroom")
        await person(stack, owner, "ed@newsroom.example", "editor")
        await stack.platform.event_log.append(
            [PageSeen(id="seen-tay", key="did:plc:tay", ts=time.time_ns() // 1000,
                      source="jetstream", page="did:plc:tay", handle="taylor.bsky.social",
                      display_name="Taylor", followers_count=1000)]
        )  # fmt: skip
        made = await stack.client.post(
            "/v1/channels",
            json={"network": "mastodon", "account": "newsroom@127.0.0.1",
                  "service": server.url, "access_token": login.access_token},
            headers=auth(owner["token"]),
        )  # fmt: skip
        assert made.status_code == 201, made.text
        context, page = await signed_in(browser, stack, "ed@newsroom.example")
        await nav(page, "Publish").click()
        await expect(page.get_by_text("Nothing scheduled yet.")).to_be_visible()
        box = page.get_by_label("Post", exact=True)
        await box.press_sequentially("Big news with @tay", delay=40)
        await expect(page.get_by_role("option").first).to_contain_text("taylor")
        await box.press("Enter")  # the suggestion, chosen by keyboard
        await expect(box).to_have_value(re.compile(r"^Big news with @taylor\.bsky\.social"))
        await page.get_by_role("button", name="Schedule").click()
        await expect(page.get_by_role("status")).to_have_text("Scheduled to 1 channel.")

        async def published() -> bool:
            return [s.text for s in state.statuses_by(login.account)] == [
                "Big news with @taylor.bsky.social "
            ]

        async def recorded() -> bool:  # the job's row is written just after the post is made
            jobs = await stack.client.get("/v1/jobs", headers=auth(owner["token"]))
            return [job["state"] for job in jobs.json()] == ["published"]

        await until(published)
        await until(recorded)
        await page.reload()
        row = page.get_by_role("row").filter(has_text="newsroom@127.0.0.1")
        await expect(row).to_contain_text("published")
        await screens(page, "publish")
        await context.close()
