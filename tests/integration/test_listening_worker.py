"""The listening worker over the embedded log and store, as `bootstrap` opens them: the
searches folded from `control` applying from the post after they were saved, the inbox
arrivals of the tenants' channels, deleted posts withdrawn (matched lately or long ago),
a crash between the appends and the positions appending nothing twice, and a backfill
splitting the posts with the live matcher."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest

from hubbub.bootstrap import listening_policy, open_event_log, open_listening
from hubbub.eventlog.ports import EventLog
from hubbub.kernel.clock import FixedClock
from hubbub.kernel.events import (
    MATCHES,
    ChannelChanged,
    MatchWithdrawn,
    PostDeleted,
    PostEdited,
    PostPublished,
    SearchChanged,
    SearchMatched,
)
from hubbub.listening import worker
from hubbub.listening.ports import MatchFilter
from hubbub.listening.service import Listening
from hubbub.listening.sql import SqlListeningStore
from hubbub.settings import Settings

T0 = 1_800_000_000_000_000
CLOCK = FixedClock(T0)


class NoPages:
    async def resolve(self, tenant: str, handle: str) -> list[str]:
        return {"acme.example": ["did:plc:acme"]}.get(handle, [])

    async def close(self) -> None:
        pass


@dataclass
class Parts:
    listening: Listening
    event_log: EventLog
    state: worker.MatcherState
    policy: worker.ListeningPolicy

    async def run(self) -> None:
        await worker.match_all(self.listening.store, self.event_log, self.state, self.policy, CLOCK)
        await worker.fold(self.listening.store, self.event_log)

    async def texts(self, tenant: str, search: str) -> list[str]:
        page = await self.listening.matches(tenant, search, MatchFilter())
        return [m.text for m in page.matches]


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[Parts]:
    settings = Settings(data_dir=tmp_path)
    event_log = await open_event_log(settings)
    listening = open_listening(settings, event_log, CLOCK)
    await listening.pages.close()
    listening.pages = NoPages()
    yield Parts(listening, event_log, worker.MatcherState(), listening_policy(settings))
    listening.store.close()
    await event_log.close()


def post(n: int, text: str, author: str = "", **more: Any) -> PostPublished:
    author = author or f"did:plc:author{n}"
    return PostPublished(
        id=f"post-{n}", key=author, ts=T0 + n, source="test",
        post=f"at://{author}/app.bsky.feed.post/{n}", author=author, text=text, **more,
    )  # fmt: skip


def deleted(n: int, author: str = "") -> PostDeleted:
    author = author or f"did:plc:author{n}"
    return PostDeleted(
        id=f"delete-{n}", key=author, ts=T0 + 1000 + n, source="test",
        post=f"at://{author}/app.bsky.feed.post/{n}", author=author,
    )  # fmt: skip


async def test_a_search_applies_from_the_post_after_it_was_saved(parts: Parts) -> None:
    await parts.event_log.append([post(1, "hubbub before")])
    brand = await parts.listening.save("acme", "u-ann", "Brand", "hubbub")
    await parts.event_log.append([post(2, "hubbub after"), post(3, "unrelated")])
    await parts.run()
    assert await parts.texts("acme", brand.id) == ["hubbub after"]

    changed = await parts.listening.save("acme", "u-ann", "Brand", "unrelated OR after", brand.id)
    await parts.event_log.append([post(4, "unrelated again")])
    await parts.run()
    assert await parts.texts("acme", changed.id) == ["unrelated again", "hubbub after"]

    # The backfill takes the posts up to where the live matcher took the search over.
    assert await parts.listening.backfill("acme", brand.id) == 1  # post 3; post 2 was matched
    await worker.fold(parts.listening.store, parts.event_log)
    assert sorted(await parts.texts("acme", brand.id)) == [
        "hubbub after", "unrelated", "unrelated again"
    ]  # fmt: skip
    assert await parts.listening.backfill("acme", brand.id) == 0  # done already

    await parts.listening.remove("acme", "u-ann", brand.id)
    await parts.event_log.append([post(5, "unrelated once more")])
    await parts.run()
    matched = [r.event for r in await parts.event_log.read(MATCHES)]
    assert not any(isinstance(e, SearchMatched) and e.post.endswith("/5") for e in matched)


async def test_a_page_search_matches_its_mentions_and_handle_and_nobody_elses(
    parts: Parts,
) -> None:
    pages = await parts.listening.save("acme", "u-ann", "Us", "@acme.example")
    assert pages.pages == {"acme.example": ["did:plc:acme"]}
    rival = await parts.listening.save("globex", "u-eve", "Them", "@acme.example OR rival")
    await parts.event_log.append([
        post(1, "hello @acme.example"), post(2, "hi there", mentions=["did:plc:acme"]),
        post(3, "acme example"), post(4, "a rival appears"),
    ])  # fmt: skip
    await parts.run()
    assert await parts.texts("acme", pages.id) == ["hi there", "hello @acme.example"]
    assert await parts.texts("globex", rival.id) == [
        "a rival appears", "hi there", "hello @acme.example"
    ]  # fmt: skip
    theirs = parts.listening.store.matches("globex", pages.id, MatchFilter())
    assert theirs.matches == []  # another tenant's id: nothing


async def test_posts_mentioning_or_answering_a_channel_reach_its_tenants_inbox(
    parts: Parts,
) -> None:
    await parts.event_log.append([
        ChannelChanged(id="ch-1", key="acme/ch1", ts=T0, source="publishing", tenant="acme",
                       channel="ch1", network="bluesky", account="acme.example",
                       page="did:plc:acme"),
        ChannelChanged(id="ch-2", key="globex/ch2", ts=T0, source="publishing",
                       tenant="globex", channel="ch2", network="bluesky",
                       account="globex.example", page="did:plc:globex"),
    ])  # fmt: skip
    await parts.event_log.append([
        post(1, "thanks @acme.example", mentions=["did:plc:acme"]),
        post(2, "great point", reply_parent="at://did:plc:acme/app.bsky.feed.post/9"),
        post(3, "we posted this", author="did:plc:acme", mentions=["did:plc:acme"]),
        post(4, "nothing for anyone"),
    ])  # fmt: skip
    await parts.run()
    inbox = parts.listening.store.matches("acme", "inbox:ch1", MatchFilter())
    assert [(m.text, m.kind) for m in inbox.matches] == [
        ("great point", "reply"), ("thanks @acme.example", "mention"),
    ]  # fmt: skip
    assert parts.listening.store.matches("globex", "inbox:ch2", MatchFilter()).matches == []
    await parts.event_log.append([
        ChannelChanged(id="ch-1-gone", key="acme/ch1", ts=T0, source="publishing",
                       tenant="acme", channel="ch1", network="bluesky",
                       account="acme.example", page="did:plc:acme", active=False),
        post(5, "again @acme.example", mentions=["did:plc:acme"]),
    ])  # fmt: skip
    await parts.run()
    assert len(parts.listening.store.matches("acme", "inbox:ch1", MatchFilter()).matches) == 2


async def test_a_deleted_post_is_withdrawn_whether_matched_lately_or_long_ago(
    parts: Parts,
) -> None:
    brand = await parts.listening.save("acme", "u-ann", "Brand", "hubbub")
    await parts.event_log.append([post(1, "hubbub one"), post(2, "hubbub two")])
    await parts.run()
    parts.state = worker.MatcherState()  # a restart: post 1's match is only in the store
    await parts.event_log.append([post(3, "hubbub three")])
    await worker.match_all(parts.listening.store, parts.event_log, parts.state, parts.policy, CLOCK)
    await parts.event_log.append([deleted(1), deleted(3), deleted(7)])  # 3: not folded yet
    await parts.run()
    assert await parts.texts("acme", brand.id) == ["hubbub two"]
    withdrawn = [r.event for r in await parts.event_log.read(MATCHES)]
    assert sorted((e.post, e.ts) for e in withdrawn if isinstance(e, MatchWithdrawn)) == [
        (post(1, "").post, deleted(1).ts),
        (post(3, "").post, deleted(3).ts),
    ]
    # dated as their deletes, not by the matcher's clock: `matches` keeps to event time


async def test_a_crash_before_the_positions_move_appends_nothing_twice(parts: Parts) -> None:
    await parts.listening.save("acme", "u-ann", "Brand", "hubbub")
    await parts.event_log.append([post(1, "hubbub one")])
    await worker.match_all(parts.listening.store, parts.event_log, parts.state, parts.policy, CLOCK)
    store = parts.listening.store
    assert isinstance(store, SqlListeningStore)
    with store.engine.begin() as db:
        db.exec_driver_sql("DELETE FROM listening_positions")  # as if it never moved
    await worker.match_all(
        parts.listening.store, parts.event_log, worker.MatcherState(), parts.policy, CLOCK
    )
    matched = [r.event for r in await parts.event_log.read(MATCHES)]
    assert len([e for e in matched if isinstance(e, SearchMatched)]) == 1


async def test_a_search_that_no_longer_parses_is_skipped_and_said(
    parts: Parts, capsys: pytest.CaptureFixture[str]
) -> None:
    await parts.event_log.append([
        SearchChanged(id="bad", key="acme/bad", ts=T0, source="listening", tenant="acme",
                      search="bad", query="(unclosed"),
    ])  # fmt: skip
    await parts.event_log.append([post(1, "unclosed")])
    await parts.run()  # no crash
    assert len(parts.state.matcher) == 0
    said = capsys.readouterr()
    assert "a saved search no longer parses" in said.out + said.err


async def test_a_post_deleted_before_the_matcher_reaches_it_is_never_matched(
    parts: Parts,
) -> None:
    brand = await parts.listening.save("acme", "u-ann", "Brand", "hubbub")
    await parts.event_log.append([post(n, f"hubbub {n}") for n in range(1, 6)])
    await parts.event_log.append([deleted(4)])
    small = worker.ListeningPolicy(batch=2)
    await worker.match_step(parts.listening.store, parts.event_log, parts.state, small, CLOCK)
    await worker.match_all(parts.listening.store, parts.event_log, parts.state, small, CLOCK)
    await worker.fold(parts.listening.store, parts.event_log)
    assert await parts.texts("acme", brand.id) == ["hubbub 5", "hubbub 3", "hubbub 2", "hubbub 1"]


async def test_a_caught_up_matcher_remembers_a_deletion_for_a_minute_and_no_longer(
    parts: Parts,
) -> None:
    brand = await parts.listening.save("acme", "u-ann", "Brand", "hubbub")
    clock = FixedClock(T0)

    async def run() -> None:
        await worker.match_all(
            parts.listening.store, parts.event_log, parts.state, parts.policy, clock
        )
        await worker.fold(parts.listening.store, parts.event_log)

    await parts.event_log.append([post(1, "hubbub 1"), deleted(1)])
    await run()
    assert list(parts.state.deleted) == [post(1, "").post]
    clock.advance(61)
    await parts.event_log.append([post(2, "hubbub 2")])
    await run()
    assert list(parts.state.deleted) == []  # a minute on, its post long read: forgotten
    await parts.event_log.append([deleted(3)])  # stored before its post (JetStream's
    await run()  # topics are written concurrently): kept a minute, caught up or not
    clock.advance(30)
    await parts.event_log.append([post(4, "hubbub 4")])
    await run()
    await parts.event_log.append([post(3, "hubbub 3")])
    await run()
    assert await parts.texts("acme", brand.id) == ["hubbub 4", "hubbub 2"]


async def test_a_search_the_matcher_learns_of_late_takes_the_posts_it_went_past(
    parts: Parts,
) -> None:
    await parts.run()  # the matcher knows every search there is
    await parts.event_log.append([post(1, "hubbub one")])
    await parts.run()  # ... and went past post 1 before the search below was announced
    await parts.event_log.append([
        SearchChanged(id="late", key="acme/late", ts=T0, source="listening", tenant="acme",
                      search="late", query="hubbub", from_position=0),
    ])  # fmt: skip
    await parts.event_log.append([post(2, "hubbub two")])
    await parts.run()
    stored = parts.listening.store.matches("acme", "late", MatchFilter())
    assert [m.text for m in stored.matches] == ["hubbub two", "hubbub one"]
    restarted = worker.MatcherState()  # a restart re-reads control: nothing is re-matched
    await worker.match_all(parts.listening.store, parts.event_log, restarted, parts.policy, CLOCK)
    matched = [r.event for r in await parts.event_log.read(MATCHES)]
    assert len(matched) == 2


async def test_a_backfill_and_a_try_leave_deleted_posts_out(parts: Parts) -> None:
    await parts.event_log.append([post(1, "hubbub kept"), post(2, "hubbub gone")])
    await parts.event_log.append([deleted(2)])
    parts.listening.clock = FixedClock(T0 + 60_000_000)  # a minute after the posts
    tried = await parts.listening.test("acme", "hubbub")
    assert [m.text for m in tried.matches] == ["hubbub kept"]
    brand = await parts.listening.save("acme", "u-ann", "Brand", "hubbub")
    assert await parts.listening.backfill("acme", brand.id) == 1
    await worker.fold(parts.listening.store, parts.event_log)
    assert await parts.texts("acme", brand.id) == ["hubbub kept"]


async def test_an_edit_that_no_longer_matches_leaves_the_search(parts: Parts) -> None:
    brand = await parts.listening.save("acme", "u-ann", "Brand", "hubbub")
    other = await parts.listening.save("acme", "u-ann", "Other", "launch")
    await parts.event_log.append([post(1, "hubbub launch")])
    await parts.run()
    edit = PostEdited(**{**msgspec.structs.asdict(post(1, "just the launch")), "id": "edit-1"})
    await parts.event_log.append([edit])
    await parts.run()
    assert await parts.texts("acme", brand.id) == []
    assert await parts.texts("acme", other.id) == ["hubbub launch"]  # still matches: kept
