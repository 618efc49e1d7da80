"""`hubbub testnet up|down|status|cut|heal`: the platform on many hosts of this machine.

Each host is a network namespace on a private subnet (`hubbub.testnet`): a NATS
cluster of three, PostgreSQL and Redis, and every role on a host of its own (mentions
on two), running the wheel built from a checkout. Needs root. What it made is kept in
the testnet's directory (`--dir`), which `down` empties again.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from hubbub.cli.common import fail
from hubbub.testnet import Testnet, TestnetError
from hubbub.testnet.install import InstallError
from hubbub.testnet.network import NetworkError

app = typer.Typer(help="Many hosts on this machine: the platform as it runs at scale.")
out = Console()
DirOption = Annotated[
    Path, typer.Option("--dir", help="Where the testnet keeps its state, venv and logs.")
]
DEFAULT_DIR = Path("testnet")
HostArgument = Annotated[str, typer.Argument(help="A host's name, as `status` lists them.")]


def _need_root() -> None:
    if os.geteuid() != 0:
        fail("a testnet makes network namespaces: run it as root")


def _load(directory: Path) -> Testnet:
    try:
        return Testnet.load(directory)
    except TestnetError as error:
        fail(str(error))


@app.command()
def up(
    directory: DirOption = DEFAULT_DIR,
    source: Annotated[Path, typer.Option(help="The checkout whose wheel the hosts run.")] = Path(),
    subnet: Annotated[
        str | None, typer.Option(help="The hosts' subnet (default: a free /24 of 10.77.0.0/16).")
    ] = None,
) -> None:
    """Build the wheel, make the hosts, start the servers and the roles on them, and
    wait until the gateway says every role is ok."""
    _need_root()
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
        console=out, transient=True,
    ) as progress:  # fmt: skip
        task = progress.add_task("starting", total=None)

        def step(what: str) -> None:
            progress.console.print(f"[dim]·[/] {what}")
            progress.update(task, description=what)

        try:
            net = Testnet.up(directory.resolve(), source=source.resolve(), subnet=subnet, step=step)
        except (TestnetError, InstallError, NetworkError, FileNotFoundError) as error:
            fail(str(error))
    out.print(f"gateway  {net.gateway_url}")
    out.print(f"operator token  {net.admin_token}")
    out.print(_table(net))


@app.command()
def status(directory: DirOption = DEFAULT_DIR) -> None:
    """Each host: its address, whether it is cut off, its processes; and the gateway's
    word on every role."""
    net = _load(directory.resolve())
    out.print(_table(net))
    health = net.gateway_health()
    if health is None:
        out.print("gateway: [red]not answering[/]")
        raise typer.Exit(1)
    roles = ", ".join(f"{role} {state}" for role, state in health["roles"].items())
    out.print(f"gateway: {health['status']} ({roles})")
    leader = net.stream_leader("posts") or "nobody yet (nothing appended)"
    out.print(f"JetStream: meta leader {net.jetstream_leader()}; the posts stream led by {leader}")


@app.command()
def down(directory: DirOption = DEFAULT_DIR) -> None:
    """Stop every process, remove every namespace, link and directory the testnet made."""
    _need_root()
    problems = _load(directory.resolve()).down()
    if problems:
        fail("not everything could be removed:\n" + "\n".join(problems), code=1)
    out.print("testnet removed")


@app.command()
def cut(host: HostArgument, directory: DirOption = DEFAULT_DIR) -> None:
    """Cut a host off the network (its link down: its traffic is dropped)."""
    _need_root()
    try:
        _load(directory.resolve()).partition(host)
    except (TestnetError, NetworkError) as error:
        fail(str(error))
    out.print(f"{host} cut off")


@app.command()
def heal(host: HostArgument, directory: DirOption = DEFAULT_DIR) -> None:
    """Join a host that was cut off to the network again."""
    _need_root()
    try:
        _load(directory.resolve()).heal(host)
    except (TestnetError, NetworkError) as error:
        fail(str(error))
    out.print(f"{host} back on the network")


def _table(net: Testnet) -> Table:
    table = Table("host", "address", "link", "processes")
    for host in net.status():
        link = "[red]cut off[/]" if host.cut_off else "up" if host.namespace else "[red]gone[/]"
        running = ", ".join(
            name if up else f"[red]{name} (exited)[/]" for name, up in host.processes.items()
        )
        table.add_row(host.host, host.address, link, running)
    return table
