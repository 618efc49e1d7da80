"""`hubbub channels add|list|remove|queue` and `hubbub posts schedule|list|show|retry|cancel`:
a tenant's accounts on the networks and their queues, and the posts published to them
(now, at a time, in a queue's next slot, or recurring).

A channel's secret (a Bluesky app password, a Mastodon access token) is read from a
hidden prompt, or from stdin when piped, never from an argument. The publishing role
(`hubbub serve`) publishes what falls due; these commands only change what is kept.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer
from rich.table import Table

from hubbub.bootstrap import open_publishing
from hubbub.cli.common import console, fail, load_settings, print_json, run, with_log
from hubbub.eventlog.ports import EventLog
from hubbub.kernel.clock import SystemClock
from hubbub.publishing.api import change_view, job_view, queue_view
from hubbub.publishing.ports import Forbidden, Invalid, NotFound
from hubbub.publishing.review import waiting_on
from hubbub.publishing.service import Publishing, channel_view

channels_app = typer.Typer(help="Accounts posts are published to.", no_args_is_help=True)
posts_app = typer.Typer(help="Posts, and the jobs publishing them.", no_args_is_help=True)
TenantOption = Annotated[str | None, typer.Option(help="Tenant (default: HUBBUB_TENANT).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
T = TypeVar("T")


def _with_publishing(work: Callable[[Publishing], Awaitable[T]]) -> T:
    """Run `work` on publishing as the settings describe it (its events and notices go
    to the log, as the API's do); refusals exit with why."""
    settings = load_settings()

    async def main(event_log: EventLog) -> T:
        parts = open_publishing(settings, SystemClock(), event_log)
        try:
            return await work(parts.service)
        finally:
            await parts.close()

    try:
        return run(with_log(settings, main))
    except (NotFound, Invalid, Forbidden, ValueError) as error:
        fail(str(error))


def _tenant(tenant: str | None) -> str:
    return tenant or load_settings().tenant


def _secret(what: str) -> str:
    if sys.stdin.isatty():
        return str(typer.prompt(what, hide_input=True)).strip()
    return sys.stdin.readline().strip()


@channels_app.command("add")
def add_channel(
    network: Annotated[Literal["bluesky", "mastodon"], typer.Argument(help="The network.")],
    account: Annotated[str, typer.Option(help="The Bluesky handle, or user@instance.")],
    service: Annotated[str, typer.Option(help="The PDS or instance, https://…")],
    time_zone: Annotated[str, typer.Option(help="The channel's IANA zone.")] = "UTC",
    tenant: TenantOption = None,
    json: JsonOption = False,
) -> None:
    """Connect an account; its secret is asked for (or read from stdin)."""
    if network == "bluesky":
        credentials = {"identifier": account, "password": _secret("App password")}
    else:
        credentials = {"access_token": _secret("Access token")}
    chosen = _tenant(tenant)

    async def add(publishing: Publishing) -> dict[str, Any]:
        made = await publishing.add_channel(
            chosen, network, account, service, credentials, time_zone
        )
        return channel_view(made)

    made = _with_publishing(add)
    if json:
        print_json(made)
        return
    print(made["id"])
    limits = made["limits"]
    console.print(f"{account} on {network}: up to {limits['characters']} characters a post")


@channels_app.command("connect")
def connect_channel(
    service: Annotated[str, typer.Option(help="The Mastodon instance, https://…")],
    time_zone: Annotated[str, typer.Option(help="The channel's IANA zone.")] = "UTC",
    tenant: TenantOption = None,
    json: JsonOption = False,
) -> None:
    """Connect a Mastodon account by its owner's approval (OAuth): open the address
    shown, approve Hubbub there, and paste the code the instance shows."""
    from hubbub.publishing.logins import MastodonLogins
    from hubbub.publishing.mastodon import MastodonNetwork

    settings, chosen = load_settings(), _tenant(tenant)

    async def connect(event_log: EventLog) -> dict[str, Any]:
        parts = open_publishing(settings, SystemClock(), event_log)
        try:
            mastodon = parts.networks["mastodon"]
            assert isinstance(mastodon, MastodonNetwork)
            logins = MastodonLogins(parts.service, mastodon, SystemClock())
            login = await logins.start(chosen, service, time_zone)
            console.print(f"Approve Hubbub at:\n{login.authorize_url}", soft_wrap=True)
            code = _secret("The code the instance shows")
            return channel_view(await logins.finish(chosen, login.state, code))
        finally:
            await parts.close()

    try:
        made = run(with_log(settings, connect))
    except (NotFound, Invalid, ValueError) as error:
        fail(str(error))
    if json:
        print_json(made)
        return
    print(made["id"])
    console.print(f"{made['account']} on mastodon: up to {made['limits']['characters']} characters")


@channels_app.command("list")
def list_channels(tenant: TenantOption = None, json: JsonOption = False) -> None:
    """The tenant's channels."""
    chosen = _tenant(tenant)

    async def listed(publishing: Publishing) -> list[dict[str, Any]]:
        return [channel_view(c) for c in publishing.channels(chosen)]

    found = _with_publishing(listed)
    if json:
        print_json(found)
        return
    table = Table("channel", "network", "account", "zone", "limit")
    for c in found:
        table.add_row(c["id"], c["network"], c["account"], c["time_zone"],
                      str(c["limits"]["characters"]))  # fmt: skip
    console.print(table if found else "no channels: `hubbub channels add` connects one")


@channels_app.command("queue")
def queue(
    channel: str,
    slots: Annotated[
        str | None,
        typer.Argument(
            help="Weekly slots in the channel's zone, as \"mon-fri 09:00,13:30;"
            ' sat 10:00"; "" for none. Left out: the queue is shown.'
        ),
    ] = None,
    tenant: TenantOption = None,
    json: JsonOption = False,
) -> None:
    """Show or set a channel's queue: `posts schedule --queue` takes its next free slot."""
    chosen = _tenant(tenant)

    async def queued(publishing: Publishing) -> dict[str, Any]:
        found = (
            publishing.channel(chosen, channel)
            if slots is None
            else await publishing.set_queue(chosen, channel, slots)
        )
        return queue_view(found, publishing.clock.now_us())

    shown = _with_publishing(queued)
    if json:
        print_json(shown)
        return
    if not shown["slots"]:
        console.print(f'channel {channel} has no queue: `hubbub channels queue {channel} "mon-fri'
                      ' 09:00"` gives it one')  # fmt: skip
        return
    console.print(f"{shown['slots']} ({shown['time_zone']})")
    for moment in shown["upcoming"]:
        console.print(f"  next: {moment}")


@channels_app.command("remove")
def remove_channel(channel: str, tenant: TenantOption = None) -> None:
    """Disconnect an account; what it had scheduled is cancelled."""
    chosen = _tenant(tenant)

    async def remove(publishing: Publishing) -> None:
        await publishing.disconnect(chosen, channel)

    _with_publishing(remove)
    console.print(f"channel {channel} removed")


_IN_PART = re.compile(r"^(\d+):(.+)$")


def _image(given: str, parts: int) -> tuple[int, Path]:
    """`[N:]PATH` as (the part's index, from 0; the image's path)."""
    found = _IN_PART.match(given)
    if found is None or Path(given).exists():
        return 0, Path(given)
    number = int(found.group(1))
    if not 1 <= number <= parts:
        fail(f"--image {given}: there is no part {number} (the post has {parts})")
    return number - 1, Path(found.group(2))


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        fail(f"cannot read {path}: {error.strerror}")


@posts_app.command("schedule")
def schedule(
    text: Annotated[str, typer.Argument(help="The post's text (a thread's first part).")],
    channel: Annotated[list[str], typer.Option(help="A channel id; repeat for several.")],
    at: Annotated[
        str | None,
        typer.Option(help="2026-12-24T09:00 (in each channel's zone), or with an offset."),
    ] = None,
    image: Annotated[
        list[str] | None,
        typer.Option(
            metavar="[N:]PATH",
            help="An image (PNG, JPEG, WebP, GIF); repeat for several. `2:photo.jpg` puts it"
            " in the thread's second part (the first --part); by default it is in the first.",
        ),
    ] = None,
    alt: Annotated[
        list[str] | None,
        typer.Option(
            help="The alt text of an image, in the order of --image (the first --alt is the"
            ' first image\'s); "" for none.',
        ),
    ] = None,
    part: Annotated[
        list[str] | None,
        typer.Option(
            help="Makes the post a thread: the text of a part after TEXT; repeat, in order."
            " Each part replies to the one before.",
        ),
    ] = None,
    queue: Annotated[
        bool, typer.Option("--queue", help="In each channel's next free queue slot.")
    ] = False,
    repeat: Annotated[
        str | None,
        typer.Option(
            metavar="RRULE",
            help="Recur, from --at, as FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0 (RFC 5545);"
            " `posts cancel --series` stops it.",
        ),
    ] = None,
    variant: Annotated[
        list[str] | None,
        typer.Option(
            metavar="CHANNEL=TEXT",
            help="What one channel publishes instead of TEXT; repeat for several.",
        ),
    ] = None,
    language: Annotated[
        str | None, typer.Option(help="The post's language, as en or pt-BR.")
    ] = None,
    spoiler: Annotated[
        str | None, typer.Option(help="Mastodon: a content warning shown before the text.")
    ] = None,
    visibility: Annotated[
        Literal["public", "unlisted", "private", "direct"],
        typer.Option(help="Mastodon: who sees it."),
    ] = "public",
    tag: Annotated[
        list[str] | None, typer.Option(help="A label for the calendar; repeat for several.")
    ] = None,
    as_: Annotated[
        str | None,
        typer.Option(
            "--as",
            metavar="PERSON",
            help="Who writes it: a user id or an email (their role picks the approval"
            " workflows that apply). Default: the command line.",
        ),
    ] = None,
    tenant: TenantOption = None,
    json: JsonOption = False,
) -> None:
    """Schedule a post to channels, now or `--at`; prints each job's id, or, when an
    approval workflow applies, the post's id and who it waits for.

    hubbub posts schedule "Our new office" --channel C1 --image office.jpg
    --alt "A bright room with six desks" --part "More photos tomorrow"
    """
    chosen = _tenant(tenant)
    texts, alts = [text, *(part or [])], list(alt or [])
    if len(alts) > len(image or []):
        fail(f"{len(alts)} --alt for {len(image or [])} --image: one alt text an image")
    images = [(*_image(given, len(texts)), alts[n] if n < len(alts) else None)
              for n, given in enumerate(image or [])]  # fmt: skip
    data = [_read(path) for _, path, _ in images]
    variants = {}
    for given in variant or []:
        named, equals, said = given.partition("=")
        if not equals or not named:
            fail(f"--variant {given!r}: write it CHANNEL=TEXT")
        variants[named] = said

    from hubbub.cli.review import _person

    author = _person(chosen, as_)

    async def made(publishing: Publishing) -> tuple[str, list[dict[str, Any]], list[str]]:
        media: list[list[str]] = [[] for _ in texts]
        for (index, _, described), content in zip(images, data, strict=True):
            media[index].append((await publishing.add_media(chosen, content, described)).id)
        thread = list(zip(texts[1:], media[1:], strict=True))
        post, jobs = await publishing.schedule(
            chosen, author.key, text, channel, at=at, media=media[0], thread=thread,
            queue=queue, repeat=repeat, variants=variants, language=language, spoiler=spoiler,
            visibility=visibility, tags=tag or (), role=author.role,
        )  # fmt: skip
        review = await asyncio.to_thread(publishing.review, chosen, post.id)
        waiting = waiting_on(review.steps[0], []) if review else []
        return post.id, [job_view(job) for job in jobs], waiting

    post, jobs, waiting = _with_publishing(made)
    if json:
        print_json(jobs if not waiting else {"post": post, "review": "in_review",
                                             "waiting_on": waiting})  # fmt: skip
        return
    if waiting:
        console.print(f"post {post} waits for approval from {', '.join(waiting)}:"
                      f" `hubbub posts review {post}` shows where it is")  # fmt: skip
        return
    for job in jobs:
        print(job["id"])
    if jobs and jobs[0]["series"]:
        console.print(f"series {jobs[0]['series']}: `hubbub posts cancel --series` stops it")


@posts_app.command("list")
def list_jobs(
    tenant: TenantOption = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    json: JsonOption = False,
) -> None:
    """The tenant's publish jobs, latest due first."""
    chosen = _tenant(tenant)

    async def listed(publishing: Publishing) -> list[dict[str, Any]]:
        return [job_view(job) for job in publishing.jobs(chosen, limit)]

    jobs = _with_publishing(listed)
    if json:
        print_json(jobs)
        return
    table = Table("job", "channel", "due (UTC)", "state", "tries", "where / why")
    for job in jobs:
        due = datetime.fromtimestamp(job["due_us"] / 1e6, UTC).strftime("%Y-%m-%d %H:%M")
        table.add_row(job["id"], job["channel"], due, job["state"], str(job["attempts"]),
                      job["url"] or job["error"] or "")  # fmt: skip
    console.print(table if jobs else "no posts: `hubbub posts schedule` makes one")


def _one(action: str, job: str, tenant: str | None) -> None:
    chosen = _tenant(tenant)

    async def act(publishing: Publishing) -> dict[str, Any]:
        if action == "retry":
            return job_view(await publishing.retry(chosen, job, "cli"))
        if action == "cancel":
            return job_view(await publishing.cancel(chosen, job, "cli"))
        found = publishing.job(chosen, job)
        changes = publishing.history(chosen, found.post)
        return {**job_view(found), "history": [change_view(change) for change in changes]}

    print_json(_with_publishing(act))


@posts_app.command("show")
def show(job: str, tenant: TenantOption = None) -> None:
    """One job, as JSON: its state, tries, where it was published or why not, and its
    post's history (each state of each of its jobs, oldest first)."""
    _one("show", job, tenant)


@posts_app.command("retry")
def retry(job: str, tenant: TenantOption = None) -> None:
    """Schedule a failed, missed or cancelled job again, now; a post the network has
    already is found, never sent twice."""
    _one("retry", job, tenant)


@posts_app.command("cancel")
def cancel(
    job: Annotated[str | None, typer.Argument(help="The job.")] = None,
    series: Annotated[
        str | None, typer.Option(help="Stop a recurring post instead: no more occurrences.")
    ] = None,
    tenant: TenantOption = None,
) -> None:
    """Cancel a scheduled job, or a recurring post's series (its scheduled jobs too)."""
    if (job is None) == (series is None):
        fail("name a job, or a recurring post's --series")
    if job is not None:
        _one("cancel", job, tenant)
        return
    assert series is not None
    chosen = _tenant(tenant)

    async def stop(publishing: Publishing) -> list[dict[str, Any]]:
        return [job_view(one) for one in await publishing.cancel_series(chosen, series)]

    print_json(_with_publishing(stop))
