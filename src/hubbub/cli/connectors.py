"""`hubbub connectors set-token|list|remove`: connectors' access tokens, kept sealed.

A token is read from a hidden prompt, or from stdin when it is piped in (`pass show
mastodon | hubbub connectors set-token mastodon --account mastodon.social`), never from
an argument, which shell history and `ps` would show. It is sealed (`SecretBox`) before
the relational store gets it, and opened only by the command that uses it: `hubbub
ingest mastodon` without `--token` uses the one kept for its instance's host.
"""

from __future__ import annotations

import sys
from contextlib import closing
from typing import Annotated, Literal
from urllib.parse import urlsplit

import typer
from rich.table import Table

from hubbub.bootstrap import open_secret_box, open_tenant_store
from hubbub.cli.common import console, fail, load_settings, print_json
from hubbub.gateway.ports import NotFound
from hubbub.kernel.clock import SystemClock
from hubbub.kernel.sealing import SealError
from hubbub.settings import Settings

app = typer.Typer(help="Connectors' access tokens, kept sealed.", no_args_is_help=True)
Connector = Literal["mastodon"]
ConnectorArgument = Annotated[Connector, typer.Argument(help="The connector: mastodon.")]
AccountOption = Annotated[
    str, typer.Option(help="The account: the instance's host (mastodon.social) or URL.")
]
TenantOption = Annotated[str | None, typer.Option(help="Tenant (default: HUBBUB_TENANT).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def account_of(host_or_url: str) -> str:
    """The account a token is kept under: a host as given, or a URL's, in lower case."""
    text = host_or_url.strip()
    if "://" in text:
        text = urlsplit(text).hostname or text
    return text.rstrip("/").lower()


def stored_token(settings: Settings, connector: Connector, account: str) -> str | None:
    """The token kept for the settings' tenant's `connector` account, opened; None if none
    is kept. Exits with the reason when it does not open (sealed under another key)."""
    with closing(open_tenant_store(settings, SystemClock())) as store:
        sealed = store.connector_token(settings.tenant, connector, account_of(account))
    if sealed is None:
        return None
    try:
        return open_secret_box(settings).open(sealed)
    except SealError as error:
        fail(str(error))


def read_token() -> str:
    """The token, from a hidden prompt at a terminal, else from stdin's first line."""
    if sys.stdin.isatty():
        given = str(typer.prompt("token", hide_input=True))
    else:
        given = sys.stdin.readline()
    token = given.strip()
    if not token or any(character.isspace() for character in token):
        fail("give the token on stdin or at the prompt: one line, no spaces")
    return token


@app.command("set-token")
def set_token(
    connector: ConnectorArgument, account: AccountOption, tenant: TenantOption = None
) -> None:
    """Keep a connector's token for an account, sealed, replacing the one kept before."""
    token = read_token()
    settings = load_settings()
    tenant, account = tenant or settings.tenant, account_of(account)
    sealed = open_secret_box(settings).seal(token)
    with closing(open_tenant_store(settings, SystemClock())) as store:
        store.put_connector_token(tenant, connector, account, sealed)
    console.print(f"{connector} token for {account} kept, sealed (tenant {tenant})")


@app.command("list")
def list_tokens(tenant: TenantOption = None, json: JsonOption = False) -> None:
    """The tenant's kept tokens: which connector and account, never the tokens."""
    settings = load_settings()
    with closing(open_tenant_store(settings, SystemClock())) as store:
        found = store.connector_tokens(tenant or settings.tenant)
    if json:
        print_json([{"tenant": t.tenant, "connector": t.connector, "account": t.account,
                     "created_at": t.created_at.isoformat(),
                     "updated_at": t.updated_at.isoformat()} for t in found])  # fmt: skip
        return
    table = Table("connector", "account", "set", "updated")
    for t in found:
        table.add_row(
            t.connector,
            t.account,
            f"{t.created_at:%Y-%m-%d %H:%M}",
            f"{t.updated_at:%Y-%m-%d %H:%M}",
        )
    console.print(table if found else "no connector tokens")


@app.command()
def remove(
    connector: ConnectorArgument, account: AccountOption, tenant: TenantOption = None
) -> None:
    """Forget a connector's token for an account."""
    settings = load_settings()
    tenant, account = tenant or settings.tenant, account_of(account)
    with closing(open_tenant_store(settings, SystemClock())) as store:
        try:
            store.delete_connector_token(tenant, connector, account)
        except NotFound as error:
            fail(str(error))
    console.print(f"{connector} token for {account} removed")
