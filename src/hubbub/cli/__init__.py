"""The `hubbub` command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hubbub.cli import (
    analytics,
    backup,
    bench,
    connectors,
    demo,
    flags,
    generate,
    ingest,
    log,
    mentions,
    ops,
    publishing,
    reports,
    review,
    routes,
    serve,
    streams,
    tenants,
    testnet,
    watch,
    webhook,
)
from hubbub.cli.common import State
from hubbub.kernel.runtime import tune_for_throughput

app = typer.Typer(
    name="hubbub",
    help="Hubbub: social listening on public firehoses.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def main(
    data_dir: Annotated[
        Path | None, typer.Option(help="Where embedded state lives (HUBBUB_DATA_DIR).")
    ] = None,
    event_log: Annotated[
        str | None, typer.Option(help="Event log adapter: sqlite or jetstream (HUBBUB_EVENT_LOG).")
    ] = None,
) -> None:
    State.data_dir = data_dir
    State.event_log = event_log
    tune_for_throughput()


app.add_typer(ingest.app, name="ingest")
app.add_typer(generate.app, name="generate")
app.add_typer(log.log_app, name="log")
app.add_typer(log.deadletter_app, name="deadletter")
app.add_typer(mentions.app, name="mentions")
app.add_typer(tenants.tenants_app, name="tenants")
app.add_typer(tenants.keys_app, name="keys")
app.add_typer(tenants.users_app, name="users")
app.add_typer(connectors.app, name="connectors")
app.add_typer(analytics.app, name="analytics")
app.add_typer(reports.app, name="reports")
app.add_typer(watch.app, name="watch")
app.add_typer(webhook.app, name="webhook")
app.add_typer(flags.app, name="flags")
app.add_typer(routes.app, name="routes")
app.add_typer(publishing.channels_app, name="channels")
app.add_typer(publishing.posts_app, name="posts")
app.add_typer(review.workflows_app, name="workflows")
app.add_typer(streams.app, name="streams")
app.add_typer(bench.app, name="bench")
app.add_typer(testnet.app, name="testnet")
app.add_typer(backup.app, name="backup")
app.command("rebuild")(backup.rebuild_model)
app.command()(ops.config)
app.command()(ops.doctor)
app.command()(serve.serve)
app.command()(demo.demo)
