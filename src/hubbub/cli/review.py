"""Approvals on the command line: `hubbub workflows list|add|remove`; a post's way through
its steps, `hubbub posts reviews|review|approve|reject|request-changes`; its new versions,
`hubbub posts edit|move`; what the team says of it, `hubbub posts comment|comments`; what
was done to it, `hubbub posts audit`; a link for an external reviewer, `hubbub posts
share`; and `hubbub channels pause|resume`.

The command line is the operator's, run on the deployment. It manages a workspace's
workflows as its owner would. A decision, an edit or a comment is a person's: `--as`
names them (their user id, or their email), and their role is read from the workspace's
people as the gateway keeps them, so the rules are the API's: nobody approves their own
post, and a step is decided only by the people (or roles) it names. Without `--as`, a
move or a link is the command line's own, as a post it scheduled is (`cli`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Final, Literal, TypeVar

import typer
from rich.markup import escape
from rich.table import Column, Table
from rich.text import Text

from hubbub.bootstrap import open_tenant_store
from hubbub.cli.common import console, fail, load_settings, print_json
from hubbub.cli.publishing import (
    JsonOption,
    TenantOption,
    _with_publishing,
    channels_app,
    posts_app,
)
from hubbub.gateway.ports import User
from hubbub.kernel.clock import SystemClock
from hubbub.publishing.api import iso, job_view, review_view, workflow_view
from hubbub.publishing.ports import Actor, DecisionKind, Invalid, NotFound, Step
from hubbub.publishing.review import ROLES
from hubbub.publishing.review_api import audit_csv, audit_view, comments_view
from hubbub.publishing.service import MAX_LINK_HOURS, Publishing, channel_view

workflows_app = typer.Typer(
    help="Approval workflows: who approves a post before it is scheduled.", no_args_is_help=True
)
T = TypeVar("T")
OPERATOR: Final = Actor("cli", "owner")
"""Who manages workflows from the command line: the deployment's operator."""
COMMAND_LINE: Final = Actor("cli", "")
"""Who moves or shares a post without `--as`: the author of the posts the command line
schedules (`posts schedule`), with no role of a person's."""
STEP_HELP: Final = (
    'A step, in order; repeat for each: "NAME: [any|all] [users=PERSON,...] [roles=ROLE,...]'
    ' [external]". A PERSON is a user id or an email; ROLE is owner, admin, editor or'
    " viewer; any (one approval) is the default, all needs every person named and one of"
    ' each role; external: an external reviewer approves through a link. "Desk: roles=admin",'
    ' "Legal: all users=ann@example.com,bob@example.com", "Client: external".'
)
AsOption = Annotated[
    str, typer.Option("--as", metavar="PERSON", help="Who acts: a user id or an email.")
]
MaybeAsOption = Annotated[
    str | None,
    typer.Option(
        "--as", metavar="PERSON", help="Who acts: a user id or an email (default: the operator)."
    ),
]
ReasonOption = Annotated[
    str | None, typer.Option(help="Why: needed to reject, or to ask for changes.")
]
VersionOption = Annotated[
    int | None,
    typer.Option(min=1, help="The version decided on: refused if the post changed since."),
]


def parse_step(given: str) -> Step:
    """`"NAME: [any|all] [users=A,B] [roles=R,S] [external]"` as a step (its users as
    written: ids or emails); `ValueError` saying what is wrong."""
    name, colon, spec = given.rpartition(":")
    if not colon or not name.strip():
        raise ValueError(f'--step {given!r}: write it "NAME: any users=ann@example.com"')
    users: list[str] = []
    roles: list[str] = []
    mode: Literal["any", "all"] = "any"
    external = False
    for word in spec.split():
        key, equals, values = word.partition("=")
        named = [one for one in values.split(",") if one]
        if not equals and word in ("any", "all"):
            mode = "all" if word == "all" else "any"
        elif not equals and word == "external":
            external = True
        elif equals and key == "users" and named:
            users += named
        elif equals and key == "roles" and named:
            unknown = [role for role in named if role not in ROLES]
            if unknown:
                raise ValueError(f"--step {given!r}: unknown role {unknown[0]!r}: use"
                                 f" {', '.join(ROLES)}")  # fmt: skip
            roles += named
        else:
            raise ValueError(f"--step {given!r}: {word!r} is not any, all, users=…, roles=…"
                             " or external")  # fmt: skip
    if not (users or roles or external):
        raise ValueError(f"--step {given!r} names no approver: users=…, roles=… or external")
    return Step(" ".join(name.split()), tuple(dict.fromkeys(users)), tuple(dict.fromkeys(roles)),
                mode, external)  # fmt: skip


def _tenant(tenant: str | None) -> str:
    return tenant or load_settings().tenant


def _people(tenant: str) -> dict[str, User]:
    """The workspace's people, by user id, as the gateway keeps them."""
    store = open_tenant_store(load_settings(), SystemClock())
    try:
        return {user.id: user for user in store.users(tenant)}
    finally:
        store.close()


def _find(people: dict[str, User], tenant: str, who: str) -> User:
    """The person `who` names (a user id, or an email); the command fails otherwise."""
    wanted = who.strip().lower()
    for user in people.values():
        if wanted in (user.id, user.email):
            return user
    fail(f"no person {who!r} in workspace {tenant!r}: `hubbub users list --tenant {tenant}`"
         " shows them")  # fmt: skip


def _person(tenant: str, who: str | None, default: Actor = COMMAND_LINE) -> Actor:
    """Who acts: the person `who` names, with their role; `default` without one."""
    if who is None:
        return default
    user = _find(_people(tenant), tenant, who)
    return Actor(f"user:{user.id}", user.role)


def _named(key: str, people: dict[str, User]) -> str:
    """A key (`user:<id>`, `link:<name>`, `role:<name>`, an API key's id) as a person
    reads it: a person's email, a reviewer's name."""
    if key.startswith("user:") or key in people:
        user = people.get(key.removeprefix("user:"))
        return user.email if user else key
    if key.startswith("link:"):
        return f"{key.removeprefix('link:')} (external)"
    if key.startswith("role:"):
        return f"any {key.removeprefix('role:')}"
    return "the external reviewer" if key == "external" else key


def _time(iso: str | None) -> str:
    return "" if iso is None else f"{datetime.fromisoformat(iso):%Y-%m-%d %H:%M} UTC"


def _id(header: str) -> Column:
    """A column of ids, shown whole whatever the terminal's width: they are typed again."""
    return Column(header, min_width=16, no_wrap=True)


def _folded(header: str) -> Column:
    """A column whose ids and emails wrap rather than end in an ellipsis."""
    return Column(header, overflow="fold")


def _approvers(step: dict[str, Any], people: dict[str, User]) -> str:
    """Who decides a step, as "any of ann@example.com, any admin, the external reviewer"."""
    named = [_named(user, people) for user in step["users"]]
    named += [f"any {role}" if step["mode"] == "any" else f"an {role}" for role in step["roles"]]
    named += ["the external reviewer"] if step["external"] else []
    return f"{step['mode']} of {', '.join(named)}" if len(named) > 1 else named[0]


# Workflows


@workflows_app.command("list")
def list_workflows(tenant: TenantOption = None, json: JsonOption = False) -> None:
    """The workspace's approval workflows, by name."""
    chosen = _tenant(tenant)

    async def listed(publishing: Publishing) -> list[dict[str, Any]]:
        return [workflow_view(one) for one in publishing.workflows(chosen)]

    found = _with_publishing(listed)
    if json:
        print_json(found)
        return
    if not found:
        console.print("no workflows: `hubbub workflows add` makes one")
        return
    people = _people(chosen)
    table = Table(_id("workflow"), "name", _folded("steps"), _folded("applies to"))
    for one in found:
        steps = "\n".join(
            f"{number}. {step['name']}: {_approvers(step, people)}"
            for number, step in enumerate(one["steps"], 1)
        )
        applies = [f"channel {c}" for c in one["channels"]]
        applies += [f"posts of {role}s" for role in one["roles"]]
        table.add_row(one["id"], Text(one["name"]), Text(steps), "\n".join(applies))
    console.print(table)


@workflows_app.command("add")
def add_workflow(
    name: Annotated[str, typer.Option(help="The workflow's name (workflows go in name order).")],
    step: Annotated[list[str], typer.Option(metavar="STEP", help=escape(STEP_HELP))],
    channel: Annotated[
        list[str] | None,
        typer.Option(help="It applies to posts to this channel; repeat for several."),
    ] = None,
    role: Annotated[
        list[str] | None,
        typer.Option(help="It applies to every post of authors of this role; repeat."),
    ] = None,
    replace_id: Annotated[
        str | None,
        typer.Option("--replace", metavar="WORKFLOW", help="Replace this workflow instead."),
    ] = None,
    tenant: TenantOption = None,
    json: JsonOption = False,
) -> None:
    """Add an approval workflow; prints its id. A post under it is scheduled once its
    last step approves.

    hubbub workflows add --name Newsroom --channel C1 --step "Desk: roles=admin"
    --step "Legal: all users=ann@example.com,bob@example.com"
    """
    chosen = _tenant(tenant)
    try:
        steps = [parse_step(given) for given in step]
    except ValueError as error:
        fail(str(error))
    for unknown in sorted(set(role or ()) - set(ROLES)):
        fail(f"--role {unknown!r}: use {', '.join(ROLES)}")
    if any(one.users for one in steps):
        people = _people(chosen)
        steps = [replace(one, users=tuple(dict.fromkeys(_find(people, chosen, u).id
                                                        for u in one.users)))
                 for one in steps]  # fmt: skip

    async def put(publishing: Publishing) -> dict[str, Any]:
        made = await publishing.put_workflow(
            chosen, OPERATOR, name, steps, channel or (), role or (), replace_id
        )
        return workflow_view(made)

    made = _with_publishing(put)
    if json:
        print_json(made)
        return
    print(made["id"])
    console.print(f"workflow {made['name']!r}: {len(made['steps'])} steps", markup=False)


@workflows_app.command("remove")
def remove_workflow(
    workflow: Annotated[str, typer.Argument(help="The workflow's id, or its name.")],
    tenant: TenantOption = None,
) -> None:
    """Remove a workflow; posts in review keep the steps they started with."""
    chosen = _tenant(tenant)

    async def remove(publishing: Publishing) -> str:
        found = [w for w in publishing.workflows(chosen) if workflow in (w.id, w.name)]
        if len(found) > 1:
            raise Invalid(f"{len(found)} workflows are named {workflow!r}: name one by its id")
        await publishing.delete_workflow(chosen, OPERATOR, found[0].id if found else workflow)
        return found[0].name if found else workflow

    console.print(f"workflow {_with_publishing(remove)!r} removed", markup=False)


# A post's review


def _print_review(view: dict[str, Any], people: dict[str, User], text: str | None = None) -> None:
    """A review as a person reads it: where it stands, who it waits on, each step with
    who decided what and why."""
    states = {"in_review": "in review", "changes_requested": "waiting for changes",
              "rejected": "rejected", "approved": "approved and scheduled"}  # fmt: skip
    said = f"post {view['post']}, version {view['version']}: {states[view['state']]}"
    if view["state"] == "in_review":
        said += f", at step {view['step'] + 1} of {len(view['steps'])}"
    console.print(said + f"; by {_named(view['author'], people)}", markup=False)
    if text is not None:
        console.print(Text(f"  “{text}”", style="italic"))
    if view["due"]:
        console.print(f"due {_time(view['due'])}" + (" (overdue)" if view.get("overdue") else ""))
    if view["waiting_on"]:
        waiting = ", ".join(_named(one, people) for one in view["waiting_on"])
        console.print(f"waiting on {waiting}", markup=False)
    table = Table("#", "step", _folded("approvers"), "done", _folded("decisions"))
    for number, step in enumerate(view["steps"], 1):
        decisions = "\n".join(
            f"{_named(d['who'], people)} {d['decision'].replace('_', ' ')}"
            + (f": {d['reason']}" if d["reason"] else "") + f" ({_time(d['at'])})"
            for d in step["decisions"]
        )  # fmt: skip
        table.add_row(str(number), Text(step["name"]), Text(_approvers(step, people)),
                      "yes" if step["done"] else "", Text(decisions))  # fmt: skip
    console.print(table)


@posts_app.command("reviews")
def list_reviews(
    person: MaybeAsOption = None, tenant: TenantOption = None, json: JsonOption = False
) -> None:
    """The workspace's open reviews (in review, waiting for changes, rejected), newest
    first; with `--as`, those waiting on that person (their approvals inbox)."""
    chosen = _tenant(tenant)
    actor = _person(chosen, person) if person else None

    async def listed(publishing: Publishing) -> list[dict[str, Any]]:
        found = publishing.reviews(chosen, actor)
        return [
            {**review_view(one, actor, publishing.departed(one)),
             "text": publishing.post(chosen, one.post).text[:200]}
            for one in found
        ]  # fmt: skip

    found = _with_publishing(listed)
    if json:
        print_json(found)
        return
    if not found:
        console.print(f"nothing waits on {person}" if actor else "no open reviews", markup=False)
        return
    people = _people(chosen)
    table = Table(_id("post"), "v", "state", "step", "waiting on", "due", "text")
    for one in found:
        step = one["steps"][one["step"]]["name"]
        waiting = ", ".join(_named(key, people) for key in one["waiting_on"])
        table.add_row(one["post"], str(one["version"]), one["state"].replace("_", " "),
                      Text(step), Text(waiting), _time(one["due"]),
                      Text(" ".join(one["text"].split())[:60]))  # fmt: skip
    console.print(table)


@posts_app.command("review")
def show_review(
    post: Annotated[str, typer.Argument(help="The post's id.")],
    person: MaybeAsOption = None,
    tenant: TenantOption = None,
    json: JsonOption = False,
) -> None:
    """A post's review: its steps, who decided what and why, who it waits on (and, with
    `--as`, whether that person may decide it now)."""
    chosen = _tenant(tenant)
    actor = _person(chosen, person) if person else None

    async def shown(publishing: Publishing) -> tuple[dict[str, Any], str]:
        found = publishing.post(chosen, post)
        review = publishing.review(chosen, post)
        if review is None:
            raise NotFound(f"post {post} has no review: no workflow applies to it")
        return review_view(review, actor), found.text

    view, text = _with_publishing(shown)
    if json:
        print_json(view)
        return
    _print_review(view, _people(chosen), text)
    if actor is not None:
        console.print(f"{person} {'may' if view['can_decide'] else 'may not'} decide it now",
                      markup=False)  # fmt: skip


def _decide(
    kind: DecisionKind, post: str, person: str, reason: str | None, version: int | None,
    tenant: str | None, json: bool,
) -> None:  # fmt: skip
    chosen = _tenant(tenant)
    actor = _person(chosen, person)

    async def decided(publishing: Publishing) -> dict[str, Any]:
        after = await publishing.decide(chosen, actor, post, kind, reason, version)
        return review_view(after, actor)

    view = _with_publishing(decided)
    if json:
        print_json(view)
        return
    _print_review(view, _people(chosen))


@posts_app.command("approve")
def approve(
    post: Annotated[str, typer.Argument(help="The post's id.")],
    person: AsOption,
    reason: ReasonOption = None,
    version: VersionOption = None,
    tenant: TenantOption = None,
    json: JsonOption = False,
) -> None:
    """Approve the post's current step, as the person `--as` names; the last step's
    approval schedules the approved version. Nobody approves their own post."""
    _decide("approved", post, person, reason, version, tenant, json)


@posts_app.command("reject")
def reject(
    post: Annotated[str, typer.Argument(help="The post's id.")],
    person: AsOption,
    reason: ReasonOption = None,
    version: VersionOption = None,
    tenant: TenantOption = None,
    json: JsonOption = False,
) -> None:
    """Reject the post, with `--reason`: its review stops until its author edits it."""
    _decide("rejected", post, person, reason, version, tenant, json)


@posts_app.command("request-changes")
def request_changes(
    post: Annotated[str, typer.Argument(help="The post's id.")],
    person: AsOption,
    reason: ReasonOption = None,
    version: VersionOption = None,
    tenant: TenantOption = None,
    json: JsonOption = False,
) -> None:
    """Ask the author for changes, saying which with `--reason`; an edit starts the
    review again from its first step."""
    _decide("changes_requested", post, person, reason, version, tenant, json)


# New versions


def _print_version(made: dict[str, Any], people: dict[str, User]) -> None:
    console.print(f"post {made['post']} is at version {made['version']}")
    if made["review"] is not None:
        _print_review(made["review"], people)
    for job in made["jobs"]:
        when = datetime.fromtimestamp(job["due_us"] / 1e6).astimezone()
        console.print(f"job {job['id']} on channel {job['channel']}: {job['state']}, due"
                      f" {when:%Y-%m-%d %H:%M %Z}")  # fmt: skip


def _revised(
    chosen: str, actor: Actor, change: Callable[[Publishing], Awaitable[Any]]
) -> dict[str, Any]:
    async def revised(publishing: Publishing) -> dict[str, Any]:
        found, review, jobs = await change(publishing)
        return {"post": found.id, "version": found.version, "jobs": [job_view(j) for j in jobs],
                "review": review_view(review, actor) if review else None}  # fmt: skip

    return _with_publishing(revised)


@posts_app.command("edit")
def edit(
    post: Annotated[str, typer.Argument(help="The post's id.")],
    text: Annotated[str | None, typer.Option(help="The new text (a thread's first part).")] = None,
    tag: Annotated[
        list[str] | None, typer.Option(help="The post's tags, replacing its own; repeat.")
    ] = None,
    language: Annotated[str | None, typer.Option(help="Its language, as en or pt-BR.")] = None,
    person: MaybeAsOption = None,
    tenant: TenantOption = None,
    json: JsonOption = False,
) -> None:
    """Change a post (its author, or an admin; without --as, the command line, the author
    of the posts it schedules): a new version on the same channels at the
    same times. Under a workflow its review starts again from the first step; otherwise
    the new version is scheduled at once."""
    changes: dict[str, Any] = {"text": text, "tags": tag, "language": language}
    changes = {key: value for key, value in changes.items() if value is not None}
    if not changes:
        fail("say what changes: --text, --tag or --language")
    chosen = _tenant(tenant)
    actor = _person(chosen, person)
    made = _revised(chosen, actor, lambda p: p.revise(chosen, actor, post, changes))
    if json:
        print_json(made)
        return
    _print_version(made, _people(chosen))


@posts_app.command("move")
def move(
    post: Annotated[str, typer.Argument(help="The post's id.")],
    at: Annotated[
        str, typer.Option(help="2026-12-24T09:00 (in each channel's zone), or with an offset.")
    ],
    channel: Annotated[
        str | None, typer.Option(help="Move it on this channel only (default: on every one).")
    ] = None,
    person: MaybeAsOption = None,
    tenant: TenantOption = None,
    json: JsonOption = False,
) -> None:
    """Move a post to another time: a new version, checked and approved as any change
    is (its author, or an admin, moves it)."""
    chosen = _tenant(tenant)
    actor = _person(chosen, person)
    made = _revised(chosen, actor, lambda p: p.reschedule(chosen, actor, post, at, channel))
    if json:
        print_json(made)
        return
    _print_version(made, _people(chosen))


# Comments, the audit trail, links


@posts_app.command("comment")
def comment(
    post: Annotated[str, typer.Argument(help="The post's id.")],
    text: Annotated[str, typer.Argument(help="What they say; @name tells that person.")],
    person: AsOption,
    reply_to: Annotated[
        str | None, typer.Option(metavar="COMMENT", help="The comment this answers.")
    ] = None,
    tenant: TenantOption = None,
    json: JsonOption = False,
) -> None:
    """Comment on a post, or answer a comment; prints its id. The post's author, the
    comment answered and everyone named with @ are told."""
    chosen = _tenant(tenant)
    actor = _person(chosen, person)

    async def made(publishing: Publishing) -> dict[str, Any]:
        on_post = [c.id for c in publishing.comments(chosen, post)]
        if reply_to is not None and reply_to not in on_post:
            raise NotFound(f"no comment {reply_to!r} on post {post}")
        return comments_view([await publishing.comment(chosen, actor, post, text, reply_to)])[0]

    said = _with_publishing(made)
    if json:
        print_json(said)
        return
    print(said["id"])


def _thread(comments: Sequence[dict[str, Any]], people: dict[str, User], depth: int = 0) -> None:
    for one in comments:
        indent = "  " * depth
        who, when = _named(one["author"], people), _time(one["created"])
        head = f"{indent}{who} · {when} · version {one['version']}"
        console.print(Text(head, style="bold"), Text(f"[{one['id']}]", style="dim"))
        for line in one["text"].splitlines() or [""]:
            console.print(Text(f"{indent}  {line}"))
        _thread(one["replies"], people, depth + 1)


@posts_app.command("comments")
def comments(
    post: Annotated[str, typer.Argument(help="The post's id.")],
    tenant: TenantOption = None,
    json: JsonOption = False,
) -> None:
    """The team's comments on a post, as a thread: each answer under what it answers."""
    chosen = _tenant(tenant)

    async def listed(publishing: Publishing) -> list[dict[str, Any]]:
        return comments_view(publishing.comments(chosen, post))

    found = _with_publishing(listed)
    if json:
        print_json(found)
        return
    if not found:
        console.print(f"no comments: `hubbub posts comment {post} TEXT --as PERSON` makes one")
        return
    _thread(found, _people(chosen))


@posts_app.command("audit")
def audit(
    post: Annotated[str, typer.Argument(help="The post's id.")],
    csv: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="Write it as CSV to FILE (- for stdout)."),
    ] = None,
    tenant: TenantOption = None,
    json: JsonOption = False,
) -> None:
    """Everything done to a post, oldest first: who did what, when, to which version."""
    chosen = _tenant(tenant)

    async def read(publishing: Publishing) -> list[Any]:
        return publishing.audit(chosen, post)

    entries = _with_publishing(read)
    if csv is not None:
        _write(csv, audit_csv(entries), len(entries))
        return
    rows = [audit_view(entry) for entry in entries]
    if json:
        print_json(rows)
        return
    people = _people(chosen)
    table = Table("when", "what", _folded("who"), "v", "detail")
    for row in rows:
        table.add_row(_time(row["at"]), row["action"].replace("_", " "),
                      Text(_named(row["actor"], people)), str(row["version"]),
                      Text(row["detail"] or ""))  # fmt: skip
    console.print(table)


def _write(path: Path, text: str, entries: int) -> None:
    if str(path) == "-":
        typer.echo(text, nl=False)
        return
    try:
        path.write_text(text, encoding="utf-8", newline="")
    except OSError as error:
        fail(f"cannot write {path}: {error.strerror}")
    console.print(f"{entries} entries written to {path}", markup=False)


@posts_app.command("share")
def share(
    post: Annotated[str, typer.Argument(help="The post's id.")],
    name: Annotated[str, typer.Option(help="The external reviewer's name, shown to the team.")],
    hours: Annotated[
        float, typer.Option(min=1, max=MAX_LINK_HOURS, help="How long the link works.")
    ] = 72,
    person: MaybeAsOption = None,
    tenant: TenantOption = None,
    json: JsonOption = False,
) -> None:
    """A signed link that lets an external reviewer (a client) see this post only,
    comment on it and approve its external step, without an account; prints it."""
    chosen, settings = _tenant(tenant), load_settings()
    actor = _person(chosen, person)

    async def made(publishing: Publishing) -> dict[str, Any]:
        token, ends = await publishing.link(chosen, actor, post, name, hours)
        path = f"/review/{token}"
        url = settings.public_url.rstrip("/") + path
        return {"token": token, "path": path, "url": url, "expires": iso(ends)}

    link = _with_publishing(made)
    if json:
        print_json(link)
        return
    print(link["url"])
    console.print(f"for {name}, until {_time(link['expires'])}", markup=False)


@posts_app.command("unshare")
def unshare(
    post: Annotated[str, typer.Argument(help="The post's id.")],
    person: MaybeAsOption = None,
    tenant: TenantOption = None,
) -> None:
    """End every reviewer link made to this post so far (`posts share` makes a new one)."""
    chosen = _tenant(tenant)
    actor = _person(chosen, person)

    async def ended(publishing: Publishing) -> None:
        await publishing.end_links(chosen, actor, post)

    _with_publishing(ended)
    print(f"every link to post {post} made until now has ended")


# Paused queues


def _pause(channel: str, paused: bool, tenant: str | None, json: bool) -> None:
    chosen = _tenant(tenant)

    async def set_paused(publishing: Publishing) -> dict[str, Any]:
        return channel_view(await publishing.set_paused(chosen, channel, paused))

    shown = _with_publishing(set_paused)
    if json:
        print_json(shown)
        return
    said = "paused: its posts are held until it resumes" if paused else "publishing again"
    console.print(f"channel {channel} ({shown['account']}) {said}", markup=False)


@channels_app.command("pause")
def pause(
    channel: Annotated[str, typer.Argument(help="The channel's id.")],
    tenant: TenantOption = None,
    json: JsonOption = False,
) -> None:
    """Hold a channel's scheduled posts (none is published or marked missed) until it
    resumes."""
    _pause(channel, True, tenant, json)


@channels_app.command("resume")
def resume(
    channel: Annotated[str, typer.Argument(help="The channel's id.")],
    tenant: TenantOption = None,
    json: JsonOption = False,
) -> None:
    """Publish a paused channel's posts again: one whose time passed meanwhile takes its
    next free queue slot (or goes now, without a queue)."""
    _pause(channel, False, tenant, json)
