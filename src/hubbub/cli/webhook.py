"""`hubbub webhook add|list|remove|deliveries`: where a tenant's alerts are POSTed."""

from __future__ import annotations

import secrets
from typing import Annotated

import msgspec
import typer
from rich.console import Console
from rich.table import Table

from hubbub.analytics.views import DeliveriesView, WebhooksView, loaded
from hubbub.bootstrap import open_secret_box
from hubbub.cli.common import append_command, fail, load_settings, print_json, run, with_log
from hubbub.kernel.commands import short_id
from hubbub.kernel.destinations import check_url
from hubbub.kernel.events import WebhookChanged
from hubbub.settings import Settings

app = typer.Typer(help="Webhooks that receive spike alerts.", no_args_is_help=True)
out = Console()


def _save(settings: Settings, change: WebhookChanged) -> None:
    run(append_command(settings, change, f"{change.webhook}/{change.active}"))


def _webhooks(settings: Settings) -> WebhooksView:
    """The active webhooks, folded from the log's `control` topic."""
    return run(with_log(settings, lambda event_log: loaded(WebhooksView(event_log))))


@app.command()
def add(
    url: Annotated[str, typer.Option(help="Where alerts are POSTed (https://…).")],
    tenant: Annotated[str | None, typer.Option(help="Tenant (default: HUBBUB_TENANT).")] = None,
) -> None:
    """Add a webhook; prints its id and its signing secret, which is shown only now."""
    settings = load_settings()
    try:
        check_url(url, settings.webhook_allowed_networks)
    except ValueError as error:
        fail(str(error))
    secret = secrets.token_urlsafe(32)
    hook = WebhookChanged(
        id="", key=tenant or settings.tenant, ts=0, source="cli", tenant=tenant or settings.tenant,
        webhook=short_id(), url=url, secret=open_secret_box(settings).seal(secret),
    )  # fmt: skip
    _save(settings, hook)
    out.print(f"webhook {hook.webhook}\nsecret  {secret}  (verify Hubbub-Signature with it)")


@app.command("list")
def list_hooks(json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """The active webhooks (secrets are not shown)."""
    hooks = _webhooks(load_settings()).all()
    if json:
        print_json([{"webhook": h.webhook, "tenant": h.tenant, "url": h.url} for h in hooks])
        return
    table = Table("webhook", "tenant", "url")
    for h in hooks:
        table.add_row(h.webhook, h.tenant, h.url)
    out.print(table if hooks else "no webhooks")


@app.command()
def remove(webhook: Annotated[str, typer.Argument(help="The id `add` printed.")]) -> None:
    """Stop sending alerts to a webhook."""
    settings = load_settings()
    found = _webhooks(settings).get(webhook)
    if found is None:
        fail(f"no active webhook {webhook!r}")
    _save(settings, msgspec.structs.replace(found, active=False))
    out.print(f"webhook {webhook} removed")


@app.command()
def deliveries(
    limit: Annotated[
        int, typer.Option(help="The most recent N (of each tenant's newest kept).", min=1)
    ] = 50,
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The delivery log: each alert sent to each webhook, its status and tries."""
    settings = load_settings()
    view = run(
        with_log(
            settings,
            lambda log: loaded(DeliveriesView(log, kept=settings.webhook_deliveries_kept)),
        )
    )
    newest_first = view.newest(limit=limit)
    found = list(reversed(newest_first))
    if json:
        fields = ("webhook", "tenant", "alert", "status", "attempts", "error")
        print_json([{name: getattr(d, name) for name in fields} for d in found])
        return
    table = Table("webhook", "alert", "status", "tries", "error")
    for d in found:
        table.add_row(d.webhook, d.alert, str(d.status), str(d.attempts), d.error)
    out.print(table if found else "no deliveries yet")
