"""The best time to post: what the slot scores rank first, and what the fold counts."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from hubbub.analytics.best_times import HALF_US, as_slot, local_slot, ranked, slot_scores
from hubbub.analytics.rollups import firehose_scope, fold, own_scope
from hubbub.eventlog.ports import Record
from hubbub.kernel.events import EngagementRecorded, PostPublished, PublishChanged

PARIS = ZoneInfo("Europe/Paris")
HOUR_US = 3_600_000_000


def half_at(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000) // HALF_US


def best(rows: list[tuple[int, int, int]], prior: float = 10.0) -> str:
    _, scores = slot_scores(rows, PARIS, prior)
    top = as_slot(ranked(scores, 1)[0], 0.0)
    return f"{top.day} {top.time}"


def ordinary_week(start: datetime) -> list[tuple[int, int, int]]:
    """Two posts every half-hour of a week, one like each."""
    first = half_at(start)
    return [(first + i, 2, 2) for i in range(336)]


def test_the_slot_whose_posts_draw_more_engagement_ranks_first() -> None:
    monday = datetime(2026, 1, 5, tzinfo=PARIS)
    rows = ordinary_week(monday)
    rows.append((half_at(datetime(2026, 1, 7, 18, 30, tzinfo=PARIS)), 20, 200))
    assert best(rows) == "2 18:30"  # Wednesday


def test_one_lucky_post_does_not_beat_a_slot_that_is_good_every_time() -> None:
    monday = datetime(2026, 1, 5, tzinfo=PARIS)
    rows = ordinary_week(monday)
    rows.append((half_at(datetime(2026, 1, 5, 9, tzinfo=PARIS)), 1, 10))  # one lucky post
    rows.append((half_at(datetime(2026, 1, 6, 12, tzinfo=PARIS)), 50, 150))  # 3 a post, often
    assert best(rows) == "1 12:00"
    assert best(rows, prior=0.0) == "0 09:00"  # without shrinkage the lucky post would win


def test_a_slot_is_local_wall_clock_time_across_a_dst_change() -> None:
    before = datetime(2026, 3, 23, 9, tzinfo=PARIS)  # UTC+1
    after = datetime(2026, 3, 30, 9, tzinfo=PARIS)  # UTC+2, after the 29th
    assert before.astimezone(UTC).hour != after.astimezone(UTC).hour
    assert local_slot(half_at(before), PARIS) == local_slot(half_at(after), PARIS) == 18
    rows = [*ordinary_week(before), (half_at(before), 10, 60), (half_at(after), 10, 60)]
    assert best(rows) == "0 09:00"


def _post(post: str, ts: int) -> Record:
    event = PostPublished(
        id=post, key="did:plc:me", ts=ts, source="jetstream", post=post, author="did:plc:me",
        text="hello", langs=["en"],
    )  # fmt: skip
    return Record("posts", 1, event)


def _like(post: str, ts: int, n: int) -> Record:
    event = EngagementRecorded(
        id=f"like-{n}", key=post, ts=ts, source="jetstream", kind="like", post=post,
        post_author="did:plc:me", actor=f"did:plc:fan{n}", delta=1,
    )  # fmt: skip
    return Record("engagement", n, event)


def _published(post: str, ts: int) -> Record:
    event = PublishChanged(
        id="job-1-published", key="tenant-a", ts=ts, source="publishing", tenant="tenant-a",
        job="job-1", post="p1", version=1, channel="ch-1", network="bluesky",
        state="published", due_us=ts, remote_id=post,
    )  # fmt: skip
    return Record("publishing", 1, event)


def test_engagement_in_a_posts_first_day_counts_for_its_slot_and_its_channel() -> None:
    uri = "at://did:plc:me/app.bsky.feed.post/3k"
    ts = int(datetime(2026, 1, 5, 9, 10, tzinfo=PARIS).timestamp() * 1_000_000)
    records = [
        _published(uri, ts),
        _post(uri, ts),
        _like(uri, ts + HOUR_US, 1),
        _like(uri, ts + 23 * HOUR_US, 2),
        _like(uri, ts + 25 * HOUR_US, 3),  # too late
    ]
    slots = fold(records, {}).slots
    half = ts // HALF_US
    assert slots[(firehose_scope("bluesky", "en"), half)] == [1, 2]
    assert slots[(own_scope("tenant-a", "ch-1"), half)] == [1, 2]
