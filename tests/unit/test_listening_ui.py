"""The listening pages' parts: server-sent events read out of any chunking, the merged
stream's ids (each stream's position) and what it passes on, a query's error marked
where it is, a post's link only when a browser may follow it, days in the person's zone;
and the pages as their templates render them, everything a post says as text."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from jinja2 import Environment

from hubbub.ui import formatting
from hubbub.ui.api import Person, _templates
from hubbub.ui.listening import (
    INBOX_STATES,
    EventReader,
    Merged,
    Positions,
    QueryProblem,
    SentEvent,
    answered,
    back_to_inbox,
    day_range,
    inbox_filters,
    newest_positions,
    shown_match,
    tags_of,
    web_link,
)
from hubbub.ui.notifications import GatewayStreams
from hubbub.ui.ports import Answer
from hubbub.ui.service import Problem

HOSTILE = "<img src=x onerror=alert(1)> & <script>alert(2)</script>"
STREAM = "<b>one</b>"


def match(n: int, text: str = "hello", **more: Any) -> dict[str, Any]:
    return {
        "post": f"at://did:plc:a/app.bsky.feed.post/{n}",
        "url": f"https://bsky.app/profile/a/post/{n}", "author": "ann.bsky.social",
        "text": text, "langs": ["en", "fr"], "links": [], "media": 0,
        "created_at": 1_800_000_000_000_000 + n, "position": 100 + n, **more,
    }  # fmt: skip


def test_events_are_read_whatever_the_chunks() -> None:
    stream = (
        'retry: 2000\n\n: heartbeat\n\nid: 7\r\nevent: match\r\ndata: {"text": "caf\u00e9"}\r\n\r\n'
        'event: withdrawn\ndata: {"post":\ndata: "x"}\n\nid: 9\n\n'
    ).encode()
    for size in (1, 2, 3, 5, len(stream)):
        reader = EventReader()
        found: list[SentEvent] = []
        for start in range(0, len(stream), size):
            found += reader.feed(stream[start : start + size])
        assert found == [
            SentEvent(None, "", "", comment=True),
            SentEvent("7", "match", '{"text": "caf\u00e9"}'),
            SentEvent(None, "withdrawn", '{"post":\n"x"}'),
            SentEvent("9", "message", ""),
        ], size


def test_a_merged_id_holds_each_streams_position_and_nothing_else() -> None:
    positions = {"s1": "12", "s-2_x": "40"}
    assert Positions.read(Positions.write(positions)) == positions
    assert Positions.read("s1:12,bad id:3,s2:x,s3:,:4,s4:5\nid: 9") == {"s1": "12"}
    assert Positions.read(None) == {}
    assert Positions.read(",".join(f"s{n}:{n}" for n in range(200))) == {
        f"s{n}": str(n) for n in range(50)
    }


def test_the_merged_stream_names_each_events_stream_and_carries_every_position() -> None:
    merged = Merged(GatewayStreams("http://127.0.0.1:9"), "t", ["a", "b"], {"a": "5", "z": "1"})
    assert merged.positions == {"a": "5"}  # a stream the page does not show is left out
    said = merged.relayed("b", SentEvent("8", "match", json.dumps(match(1))))
    head, event, data = said.rstrip("\n").split("\n")
    assert (head, event) == ("id: a:5,b:8", "event: match")
    assert json.loads(data.removeprefix("data: ")) == {"stream": "b", "match": match(1)}
    said = merged.relayed("a", SentEvent("6", "withdrawn", '{"post": "at://x"}'))
    assert said == 'id: a:6,b:8\nevent: withdrawn\ndata: {"stream":"a","post":"at://x"}\n\n'
    assert merged.relayed("a", SentEvent(None, "", "", comment=True)) == ": heartbeat\n\n"
    assert merged.relayed("a", SentEvent("7", "other", "{}")) == "id: a:7,b:8\n\n"
    assert merged.relayed("a", SentEvent(None, "match", "not json")) == ""
    # A heartbeat that tells the stream's position (`id: 9`, then a comment) moves it.
    (told,) = EventReader().feed(b"id: 9\n: heartbeat\n\n")
    assert merged.relayed("b", told) == "id: a:7,b:9\n\n"
    assert merged.relayed("a", SentEvent("x\ny", "match", "[]")) == ""  # never two lines


def test_a_query_error_is_shown_where_it_is() -> None:
    detail = {"message": "at character 9: expected a word after AND, found end of query",
              "position": 9, "expected": "a word"}  # fmt: skip
    with pytest.raises(QueryProblem) as raised:
        answered(Answer(400, json.dumps({"detail": detail}).encode()))
    assert (raised.value.status, str(raised.value)) == (400, detail["message"])
    assert raised.value.shown("coffee AND") == {
        "message": detail["message"], "position": 9, "expected": "a word",
        "before": "coffee AN", "at": "D", "after": "",
    }  # fmt: skip
    assert raised.value.shown("ab")["position"] == 2  # past the end: after the last
    with pytest.raises(Problem) as refused:
        answered(Answer(422, b'{"detail": "a workspace keeps 100 streams at most"}'))
    assert not isinstance(refused.value, QueryProblem)
    assert str(refused.value) == "a workspace keeps 100 streams at most"
    assert answered(Answer(200, b'{"streams": []}')) == {"streams": []}


def test_only_a_web_address_becomes_a_link() -> None:
    assert web_link("https://bsky.app/profile/a/post/1") == "https://bsky.app/profile/a/post/1"
    assert web_link("HTTP://mastodon.example/@a/1") == "HTTP://mastodon.example/@a/1"
    for hostile in ("javascript:alert(1)", "//evil.example", " https://x", "data:text/html,x",
                    None, 3, "https:///x"):  # fmt: skip
        assert web_link(hostile) is None, hostile
    shown = shown_match(match(1, url="javascript:alert(1)"))
    assert (shown["link"], shown["languages"]) == (None, "en, fr")
    assert shown["created"].isoformat() == "2027-01-15T08:00:00.000001+00:00"


def test_days_are_whole_days_in_the_persons_zone() -> None:
    # Paris moves to summer time on 2027-03-28: that day has 23 hours.
    found = day_range(date(2027, 3, 28), date(2027, 3, 28), "Europe/Paris")
    assert found["until"] - found["since"] == 23 * 3600 * 1_000_000
    assert found["since"] == 1_806_188_400_000_000  # 2027-03-27T23:00Z
    assert day_range(None, None, "UTC") == {}


def test_tags_and_where_each_column_resumes() -> None:
    assert tags_of(" urgent, , press ,urgent,") == ["urgent", "press"]
    columns = [
        {"stream": {"id": "s1"}, "matches": [match(3), match(1)]},
        {"stream": {"id": "s2"}, "matches": []},
    ]
    assert newest_positions(columns) == {"s1": "103"}
    # Where the platform's stored matches end: a column whose matches are not stored yet
    # (the fold behind) is sent them live, from there, rather than from the log's head.
    columns = [
        {"stream": {"id": "s1"}, "matches": [match(3)], "live_from": "250"},
        {"stream": {"id": "s2"}, "matches": [], "live_from": "250"},
        {"stream": {"id": "s3"}, "matches": [], "live_from": "nonsense"},
    ]
    assert newest_positions(columns) == {"s1": "250", "s2": "250"}


def render(name: str, **context: Any) -> str:
    env: Environment = _templates().env
    who = Person("session", {"email": "ann@acme.example", "role": "editor",
                             "time_zone": "Asia/Tokyo", "locale": "en"}, "csrf-token")  # fmt: skip
    shown = {"person": who, "moment": formatting.Moments(who.zone, who.locale),
             "number": lambda n: formatting.number(n, who.locale), **context}  # fmt: skip
    return env.get_template(name).render(shown)


def test_the_board_shows_each_stream_as_a_column_and_posts_as_text() -> None:
    stream = {"id": "s1", "name": STREAM, "query": '"<b>" AND x', "costly": True}
    html = render(
        "listening.html", columns=[{"stream": stream, "matches": [shown_match(match(1, HOSTILE))]}],
        after="s1:101",
    )  # fmt: skip
    assert HOSTILE not in html
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; &lt;script&gt;" in html
    assert "<b>one</b>" not in html
    assert "&lt;b&gt;one&lt;/b&gt;" in html
    assert 'data-after="s1:101"' in html
    assert 'data-zone="Asia/Tokyo"' in html
    assert 'data-stream="s1"' in html
    assert "Jan 15, 2027, 5:00:00\u202fPM" in html  # 08:00 UTC in Tokyo
    assert 'href="https://bsky.app/profile/a/post/1"' in html
    assert html.count('name="csrf" value="csrf-token"') == 4  # sign out, add, edit, remove
    assert "Costly" in html


def test_a_query_error_is_marked_beside_the_field() -> None:
    problem = QueryProblem("at character 4: expected a word, found )", 4, "a word")
    form = {"stream": None, "name": "<i>Brand</i>", "query": "ab (<)",
            "query_error": problem.shown("ab (<)")}  # fmt: skip
    html = render("listening.html", columns=[], after="", form=form)
    assert 'aria-invalid="true"' in html
    assert 'data-error-position="4"' in html
    assert "<code>ab (<mark>&lt;</mark>)</code>" in html
    assert "Expected a word." not in html  # the message says so already
    problem = QueryProblem("at character 4: unexpected )", 4, "a word")
    html = render("listening.html", columns=[], after="",
                  form={**form, "query_error": problem.shown("ab (<)")})  # fmt: skip
    assert "Expected a word." in html
    assert 'value="&lt;i&gt;Brand&lt;/i&gt;"' in html


def test_the_matches_page_and_the_inbox_show_posts_as_text() -> None:
    html = render(
        "listening_stream.html", stream={"id": "s1", "name": STREAM, "query": "x"},
        matches=[shown_match(match(1, HOSTILE, url="javascript:alert(3)"))], q="<q>",
        lang="en", since=date(2027, 1, 1), until=None, paged=True, newest="q=%3Cq%3E",
        older="q=%3Cq%3E&before=abc", bad_lang=False,
    )  # fmt: skip
    assert HOSTILE not in html
    assert "javascript:" not in html
    assert 'value="&lt;q&gt;"' in html
    assert 'value="2027-01-01"' in html
    assert 'href="/listening/s1?q=%3Cq%3E&amp;before=abc"' in html
    item = {**shown_match(match(2, HOSTILE)), "id": "i1", "channel": "c1", "kind": "reply",
            "assignee": "u2", "tags": ["<t>"], "done": False, "read": False}  # fmt: skip
    html = render(
        "listening_inbox.html", filters={"state": "open", "assignee": "", "tag": ""},
        items=[item], unread=1, team=[{"id": "u2", "email": "bo@acme.example"}],
        emails={"u2": "bo@acme.example"}, back="state=open", older=None, said=None,
        states=INBOX_STATES, replying={"item": "i1", "text": "<our answer>"},
    )  # fmt: skip
    assert HOSTILE not in html
    assert "&lt;t&gt;" in html
    assert "assigned to bo@acme.example" in html
    assert 'action="/inbox/i1/reply"' in html
    assert 'data-unread="1"' in html
    assert ">&lt;our answer&gt;</textarea>" in html  # a refused reply, kept to send again
    assert '<option value="all">All</option>' in html


def test_an_action_goes_back_to_the_inbox_as_it_was_shown() -> None:
    assert inbox_filters("state=done&tag=press&assignee=u2&evil=1") == {
        "state": "done", "assignee": "u2", "tag": "press",
    }  # fmt: skip
    assert inbox_filters("state=nonsense")["state"] == "open"
    assert back_to_inbox("state=done&tag=a b", "tagged").headers["location"] == (
        "/inbox?state=done&tag=a+b&done=tagged"
    )
    assert back_to_inbox("//evil.example", "read").headers["location"] == (
        "/inbox?state=open&done=read"
    )
