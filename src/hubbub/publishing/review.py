"""Approval workflows: which apply to a post, who may decide a step, when a step is done,
and what a decision does to a review. Pure functions of what the store read; the service
(`hubbub.publishing.service`) keeps what they answer.

A workflow applies to a post that names one of its channels, or whose author has one of
its roles; when several apply, their steps follow one another, workflow by workflow in
name order. A step is done:

- `any`: when one person it names, or one of a role it names, approves;
- `all`: when every person it names has approved, and one person of each role it names;
- a step marked `external` is (also) done by an external reviewer approving through a
  signed link (`link:<name>`).

Nobody decides on their own post. A rejection, or a request for changes, stops the
review until the author makes a new version, which starts again from the first step.

People leave (removed from the tenant, as publishing's people table knows them): a step
stops waiting on a person it names who has left, and an approval they gave stands
(`standing`). A step naming nobody left who could approve (only people, all gone, and
no role or external reviewer) waits on the tenant's admins and owners instead (any one
of them), never passing by itself. A role is never "gone": anyone given it approves.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import replace
from typing import Final

from hubbub.publishing.ports import (
    Actor,
    Conflict,
    Decision,
    DecisionKind,
    Forbidden,
    Invalid,
    Review,
    Step,
    Workflow,
)

ROLES: Final = ("owner", "admin", "editor", "viewer")
MAX_STEPS: Final = 10
MAX_APPROVERS: Final = 50
MENTION: Final = re.compile(r"(?<![\w@.])@([A-Za-z0-9][A-Za-z0-9._+-]{0,63}(?:@[A-Za-z0-9.-]+)?)")
"""`@alice`, or `@alice@example.com`, in a comment: a person to tell."""
STAND_IN: Final = ("owner", "admin")
"""Who decides a step whose named people have all left."""


def applying(workflows: Sequence[Workflow], channels: Sequence[str], role: str) -> list[Workflow]:
    """The workflows that apply to a post to `channels` by an author of `role`, by name."""
    found = [w for w in workflows if set(w.channels) & set(channels) or role in w.roles]
    return sorted(found, key=lambda w: w.name)


def steps_of(workflows: Sequence[Workflow]) -> tuple[Step, ...]:
    return tuple(step for workflow in workflows for step in workflow.steps)


def check_workflow(workflow: Workflow, channels: Sequence[str]) -> Workflow:
    """`workflow` when it can work, else `Invalid` saying why: steps and their approvers,
    roles that exist, channels of the tenant (`channels`), something it applies to."""
    if not workflow.name.strip():
        raise Invalid("a workflow needs a name")
    if not workflow.steps:
        raise Invalid("a workflow needs at least one step")
    if len(workflow.steps) > MAX_STEPS:
        raise Invalid(f"a workflow has at most {MAX_STEPS} steps, not {len(workflow.steps)}")
    if not workflow.channels and not workflow.roles:
        raise Invalid("say what the workflow applies to: channels, authors' roles, or both")
    for role in workflow.roles:
        if role not in ROLES:
            raise Invalid(f"unknown role {role!r}: use {', '.join(ROLES)}")
    for channel in workflow.channels:
        if channel not in channels:
            raise Invalid(f"no channel {channel!r} in this workspace")
    for number, step in enumerate(workflow.steps, 1):
        where = f"step {number} ({step.name or 'unnamed'})"
        if not step.name.strip():
            raise Invalid(f"step {number} needs a name")
        if not (step.users or step.roles or step.external):
            raise Invalid(f"{where} names no approver: people, a role, or an external reviewer")
        if len(step.users) + len(step.roles) > MAX_APPROVERS:
            raise Invalid(f"{where} names more than {MAX_APPROVERS} approvers")
        for role in step.roles:
            if role not in ROLES:
                raise Invalid(f"{where}: unknown role {role!r}: use {', '.join(ROLES)}")
        if step.mode not in ("any", "all"):
            raise Invalid(f"{where}: mode is any or all, not {step.mode!r}")
    return workflow


def standing(step: Step, approvals: Sequence[Decision], left: Collection[str] = ()) -> Step:
    """`step` as it stands once the people of `left` (user ids) have left: without those
    of them who had not approved it; with nobody left to decide it (it named only people,
    all gone), the tenant's admins and owners, any one of them."""
    gone = set(step.users) & set(left)
    if not gone:
        return step
    approved = {a.who.removeprefix("user:") for a in approvals if a.who.startswith("user:")}
    users = tuple(u for u in step.users if u not in gone or u in approved)
    if not (users or step.roles or step.external):
        return Step(step.name, roles=STAND_IN, mode="any")
    return replace(step, users=users)


def eligible(step: Step, actor: Actor, left: Collection[str] = ()) -> bool:
    """Whether `actor` may decide `step` (whose people of `left` have left)."""
    step = standing(step, (), left)
    if actor.external:
        return step.external
    return actor.user is not None and (actor.user in step.users or actor.role in step.roles)


def done(step: Step, approvals: Sequence[Decision], left: Collection[str] = ()) -> bool:
    """Whether `approvals` (the step's, by eligible people) complete `step`: in `any`
    mode one of them; in `all` mode every person it names, one more person of each role
    it names (someone named counts for their name only), and its external reviewer.
    People of `left` have left: the step no longer waits on them (`standing`)."""
    step = standing(step, approvals, left)
    external = any(a.who.startswith("link:") for a in approvals)
    people = [a for a in approvals if a.who.startswith("user:")]
    if step.mode == "any":
        return bool(people) or (step.external and external)
    approved_users = {a.who.removeprefix("user:") for a in people}
    approved_roles = {a.role for a in people if a.who.removeprefix("user:") not in step.users}
    return (
        set(step.users) <= approved_users
        and set(step.roles) <= approved_roles
        and (external or not step.external)
    )


def waiting_on(step: Step, approvals: Sequence[Decision], left: Collection[str] = ()) -> list[str]:
    """Who the step still waits for: user ids, `role:<name>`, `external`; never someone
    of `left`."""
    if done(step, approvals, left):
        return []
    step = standing(step, approvals, left)
    approved = {a.who.removeprefix("user:") for a in approvals}
    roles = {a.role for a in approvals if a.who.startswith("user:") and
             a.who.removeprefix("user:") not in step.users}  # fmt: skip
    external = ["external"] if step.external else []
    if step.mode == "any":
        return [*step.users, *(f"role:{r}" for r in step.roles), *external]
    return [
        *(u for u in step.users if u not in approved),
        *(f"role:{r}" for r in step.roles if r not in roles),
        *(external if not any(a.who.startswith("link:") for a in approvals) else []),
    ]


def approvals_of(review: Review, step: int) -> list[Decision]:
    return [d for d in review.decisions if d.step == step and d.decision == "approved"]


def decide(
    review: Review, actor: Actor, kind: DecisionKind, reason: str | None, now_us: int,
    left: Collection[str] = (),
) -> tuple[Review, Decision]:  # fmt: skip
    """The review once `actor` decides `kind`, and the decision; `Forbidden` when the
    actor may not decide it now, `Invalid` when a reason is missing. `left`: the people
    named by the current step who have left."""
    if review.state != "in_review":
        raise Conflict(f"the post is not waiting for a decision: it is {_said(review.state)}")
    if actor.key in (review.author, review.submitted_by):
        raise Forbidden("nobody approves their own post (nor a version they made)")
    if actor.via and actor.via in (review.author, review.submitted_by):
        raise Forbidden("this link was shared by the post's author: it can comment, not"
                        " decide; ask a teammate to share it")  # fmt: skip
    step = review.steps[review.step]
    if not eligible(step, actor, left):
        raise Forbidden(f"not an approver of step {review.step + 1} ({step.name})")
    if kind == "approved" and any(d.who == actor.key and d.decision == "approved"
                                  for d in review.decisions):  # fmt: skip
        raise Forbidden(
            "you approved this version already (a step needs someone else)"
            if actor.external
            else f"you approved step {review.step + 1} ({step.name}) already"
        )
    reason = (reason or "").strip() or None
    if kind != "approved" and reason is None:
        raise Invalid("say why: a rejection or a request for changes needs a reason")
    decision = Decision(review.post, review.version, review.step, actor.key, actor.role,
                        kind, reason, now_us)  # fmt: skip
    decided = replace(review, decisions=(*review.decisions, decision), updated_us=now_us)
    if kind != "approved":
        return replace(decided, state=kind), decision
    if not done(step, approvals_of(decided, review.step), left):
        return decided, decision
    return passed(decided, now_us), decision


def passed(review: Review, now_us: int) -> Review:
    """The review once its current step is done: at its next step, or approved after
    its last. (A next step is never done already: it has no approvals yet, and one
    whose people have all left waits on admins and owners.)"""
    if review.step + 1 < len(review.steps):
        return replace(review, step=review.step + 1, step_since_us=now_us, reminded_us=None,
                       updated_us=now_us)  # fmt: skip
    return replace(review, state="approved", updated_us=now_us)


def mentioned(text: str) -> list[str]:
    """The handles a text names (`@alice` → `alice`), each once, in order. Punctuation
    that ends a sentence is not part of a handle: "thanks @ada." names `ada`."""
    return list(dict.fromkeys(m.rstrip("._+-").lower() for m in MENTION.findall(text)))


def _said(state: str) -> str:
    return {"changes_requested": "waiting for changes", "rejected": "rejected",
            "approved": "approved"}.get(state, state)  # fmt: skip
