"""The approval pages' own logic: a workflow read from its form, a post's edit keeping
what the form does not show, people named as a reader reads them, and the inbox's rows."""

from __future__ import annotations

import pytest
from starlette.datastructures import FormData

from hubbub.ui.review import approvers_of, edited, inbox_entry, who_is, workflow_from_form
from hubbub.ui.service import Problem


def form(*fields: tuple[str, str]) -> FormData:
    return FormData(list(fields))


def test_a_workflow_form_becomes_its_steps_in_order_and_blank_steps_are_none() -> None:
    sent = form(
        ("csrf", "x"), ("name", " Client posts "), ("channel", "ch1"), ("role", "editor"),
        ("role", "superuser"),
        ("step-0-name", "Team"), ("step-0-users", "u1"), ("step-0-users", "u2"),
        ("step-0-mode", "all"),
        ("step-1-name", ""), ("step-1-mode", "any"),  # left blank: no step
        ("step-2-name", "Client"), ("step-2-external", "yes"), ("step-2-mode", "bogus"),
    )  # fmt: skip
    assert workflow_from_form(sent) == {
        "name": "Client posts",
        "channels": ["ch1"],
        "roles": ["editor"],  # no such role as superuser
        "steps": [
            {"name": "Team", "users": ["u1", "u2"], "roles": [], "mode": "all", "external": False},
            {"name": "Client", "users": [], "roles": [], "mode": "any", "external": True},
        ],
    }


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ((("step-0-name", "Team"), ("step-0-users", "u1")), "Name the workflow."),
        ((("name", "W"),), "A workflow needs at least one step"),
        ((("name", "W"), ("step-0-users", "u1")), "Step 1 needs a name."),
        ((("name", "W"), ("step-0-name", "Legal")), "Step 1 (Legal) needs someone"),
    ],
)
def test_a_workflow_form_without_a_name_or_approvers_is_refused_saying_why(
    fields: tuple[tuple[str, str], ...], said: str
) -> None:
    with pytest.raises(Problem) as refused:
        workflow_from_form(form(*fields))
    assert refused.value.status == 422
    assert str(refused.value).startswith(said)


def test_an_edit_keeps_the_images_variants_and_settings_and_drops_blank_parts() -> None:
    post = {
        "id": "p1", "version": 2, "text": "old", "variants": {"ch2": "short"},
        "media": [{"id": "m1", "alt": "a chart"}], "language": "en", "spoiler": None,
        "visibility": "unlisted", "tags": ["launch"],
        "thread": [{"text": "two", "media": [{"id": "m2"}]}, {"text": "three", "media": []}],
    }  # fmt: skip
    assert edited(post, "new <b>text</b>", ["two, edited", "  "]) == {
        "text": "new <b>text</b>",
        "thread": [{"text": "two, edited", "media": ["m2"]}],
        "media": ["m1"],
        "variants": {"ch2": "short"},
        "language": "en",
        "spoiler": None,
        "visibility": "unlisted",
        "tags": ["launch"],
    }


def test_people_roles_and_external_reviewers_are_named_as_a_person_reads_them() -> None:
    names = {"u1": "ann@acme.example", "u2": "bob@acme.example"}
    assert who_is("user:u1", names) == "ann@acme.example"
    assert who_is("u2", names, me="u2") == "you"
    assert who_is("user:c6954a519f7c2cb4", names) == "teammate c6954a51"  # not listed
    assert who_is("key-1", names) == "key-1"  # an API key
    assert who_is(None, names) == "Hubbub"
    assert who_is("role:admin", names) == "anyone who is admin"
    assert who_is("link:Carla", names) == "Carla (external reviewer)"
    assert who_is("external", names) == "an external reviewer (by link)"
    step = {"users": ["u1", "u2"], "roles": ["owner"], "external": True}
    assert approvers_of(step, names, "u2") == [
        "ann@acme.example", "you", "anyone who is owner", "an external reviewer (by link)",
    ]  # fmt: skip


def test_an_inbox_row_has_the_post_its_excerpt_and_the_step_it_waits_at() -> None:
    review = {
        "post": "p1", "version": 3, "state": "in_review", "step": 1, "author": "user:u1",
        "due": "2026-12-07T09:00:00+00:00", "excerpt": "x" * 200,
        "steps": [{"name": "Team"}, {"name": "Client"}],
    }  # fmt: skip
    row = inbox_entry(review)
    assert (row["post"], row["step"], row["version"], row["state"]) == (
        "p1", "Client", 3, "in_review",
    )  # fmt: skip
    assert row["excerpt"] == "x" * 139 + "…"
    nested = inbox_entry({"post": {"id": "p2", "text": "Hello"}, "step": 0, "steps": []})
    assert (nested["post"], nested["excerpt"], nested["step"]) == ("p2", "Hello", None)
