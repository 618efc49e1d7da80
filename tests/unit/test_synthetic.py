"""The synthetic Jetstream firehose looks, to a consumer, like the production one."""

from __future__ import annotations

import itertools
import json
import re
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hubbub.cli import app
from hubbub.ingest.mapping.jetstream import JetstreamMapping
from hubbub.kernel.clock import FixedClock
from hubbub.kernel.events import PageSeen
from hubbub.synthetic.firehose import (
    FirehoseSpec,
    generate_firehose,
    generate_population,
    write_firehose,
)
from hubbub.synthetic.population import page

PAGES = 2_000
SPEC = FirehoseSpec(events=40_000, pages=PAGES, seed=7)

TID = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")
DID = re.compile(r"^did:plc:[a-z2-7]{24}$")
CID = re.compile(r"^bafyrei[a-z2-7]{52}$")
POST_URI = re.compile(r"^at://(did:plc:[a-z2-7]{24})/app\.bsky\.feed\.post/([2-7a-z]{13})$")
SORTABLE_BASE32 = "234567abcdefghijklmnopqrstuvwxyz"
INACTIVE_STATUSES = {"deactivated", "deleted", "takendown", "suspended"}

Event = dict[str, Any]


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    return list(generate_firehose(SPEC))


@pytest.fixture(scope="module")
def events(lines: list[bytes]) -> list[Event]:
    return [json.loads(line.decode("utf-8")) for line in lines]


def kind_of(event: Event) -> str:
    if event["kind"] != "commit":
        return str(event["kind"])
    return f"{event['commit']['collection']} {event['commit']['operation']}"


def tid_micros(tid: str) -> int:
    value = 0
    for char in tid:
        value = value * 32 + SORTABLE_BASE32.index(char)
    return value >> 10


def post_records(events: list[Event]) -> list[Event]:
    return [
        event["commit"]["record"]
        for event in events
        if kind_of(event) in {"app.bsky.feed.post create", "app.bsky.feed.post update"}
    ]


def test_each_line_is_one_json_object_in_utf8(lines: list[bytes], events: list[Event]) -> None:
    assert len(lines) == len(events) == SPEC.events
    assert not any(b"\n" in line for line in lines)
    assert all(isinstance(event, dict) for event in events)


def test_events_have_the_jetstream_v1_shape(events: list[Event]) -> None:
    for event in events:
        assert DID.match(event["did"])
        assert isinstance(event["time_us"], int)
        if event["kind"] == "commit":
            commit = event["commit"]
            assert list(commit)[:4] == ["rev", "operation", "collection", "rkey"]
            if commit["operation"] == "delete":
                assert "record" not in commit
                assert "cid" not in commit
            else:
                assert commit["record"]["$type"] == commit["collection"]
                assert CID.match(commit["cid"])
        elif event["kind"] == "identity":
            identity = event["identity"]
            assert identity["did"] == event["did"]
            assert identity["handle"].endswith(".bsky.social")
            assert isinstance(identity["seq"], int)
        else:
            assert event["kind"] == "account"
            account = event["account"]
            assert account["did"] == event["did"]
            if account["active"]:
                assert "status" not in account
            else:
                assert account["status"] in INACTIVE_STATUSES


def test_the_event_mix_follows_production(events: list[Event]) -> None:
    kinds = Counter(kind_of(event) for event in events)
    total = len(events)

    def share(*names: str) -> float:
        return sum(kinds[name] for name in names) / total

    posts = share("app.bsky.feed.post create", "app.bsky.feed.post delete")
    posts += share("app.bsky.feed.post update")
    assert share("app.bsky.feed.like create") == pytest.approx(0.69, abs=0.015)
    assert posts == pytest.approx(0.11, abs=0.01)
    assert share("app.bsky.feed.repost create") == pytest.approx(0.10, abs=0.01)
    follows = share("app.bsky.graph.follow create", "app.bsky.graph.follow delete")
    assert follows == pytest.approx(0.06, abs=0.01)
    follow_churn = kinds["app.bsky.graph.follow delete"] / kinds["app.bsky.graph.follow create"]
    assert follow_churn == pytest.approx(1 / 3, abs=0.08)
    assert 0.003 * posts < share("app.bsky.feed.post delete") < 0.03 * posts
    assert kinds["app.bsky.feed.post update"] > 0
    assert share("app.bsky.feed.like delete", "app.bsky.feed.repost delete") > 0.005
    for rare in ("identity", "account", "app.bsky.actor.profile update"):
        assert 0.002 < share(rare) < 0.015, rare
    assert kinds["app.bsky.actor.profile create"] > 0
    hubbub_collections = ("app.bsky.feed.", "app.bsky.graph.follow", "app.bsky.actor.profile")
    unknown = sum(
        count
        for name, count in kinds.items()
        if " " in name and not name.startswith(hubbub_collections)
    )
    assert 0.002 < unknown / total < 0.01


def test_the_same_seed_gives_the_same_bytes() -> None:
    spec = FirehoseSpec(events=3_000, pages=500, seed=11)
    assert list(generate_firehose(spec)) == list(generate_firehose(spec))
    other_seed = FirehoseSpec(events=3_000, pages=500, seed=12)
    assert list(generate_firehose(spec)) != list(generate_firehose(other_seed))


def test_time_advances_at_the_requested_rate(events: list[Event]) -> None:
    times = [event["time_us"] for event in events]
    assert times[0] > SPEC.start_us
    assert all(earlier < later for earlier, later in itertools.pairwise(times))
    mean_gap = (times[-1] - times[0]) / (len(times) - 1)
    assert mean_gap == pytest.approx(1_000_000 / SPEC.rate_per_s, rel=0.05)


def test_revs_and_new_rkeys_are_tids_close_to_the_event_time(events: list[Event]) -> None:
    previous_rev = ""
    for event in (event for event in events if event["kind"] == "commit"):
        commit = event["commit"]
        assert TID.match(commit["rev"])
        assert commit["rev"] >= previous_rev
        previous_rev = commit["rev"]
        assert abs(tid_micros(commit["rev"]) - event["time_us"]) < 2_000_000
        if commit["operation"] == "create" and commit["rkey"] != "self":
            assert TID.match(commit["rkey"])
            assert abs(tid_micros(commit["rkey"]) - event["time_us"]) < 2_000_000


def test_cids_of_created_records_are_unique(events: list[Event]) -> None:
    cids = [event["commit"]["cid"] for event in events if "cid" in event.get("commit", {})]
    assert len(cids) == len(set(cids))


def test_every_delete_points_at_an_earlier_create_by_the_same_account(
    events: list[Event],
) -> None:
    alive: set[tuple[str, str, str]] = set()
    deletes = 0
    for event in (event for event in events if event["kind"] == "commit"):
        commit = event["commit"]
        key = (event["did"], commit["collection"], commit["rkey"])
        if commit["operation"] == "create":
            alive.add(key)
        elif commit["operation"] == "delete":
            assert key in alive, f"delete of a record never created: {key}"
            alive.remove(key)
            deletes += 1
    assert deletes > 0.015 * len(events)


def test_post_updates_edit_a_post_created_earlier(events: list[Event]) -> None:
    created: set[tuple[str, str]] = set()
    for event in (event for event in events if event["kind"] == "commit"):
        commit = event["commit"]
        if commit["collection"] != "app.bsky.feed.post":
            continue
        if commit["operation"] == "create":
            created.add((event["did"], commit["rkey"]))
        elif commit["operation"] == "update":
            assert (event["did"], commit["rkey"]) in created


def test_facet_byte_ranges_slice_exactly_the_mention_tag_or_link(events: list[Event]) -> None:
    handles = {page(index).did: page(index).handle for index in range(PAGES)}
    seen: Counter[str] = Counter()
    after_multibyte_text = 0
    for record in post_records(events):
        text_bytes = record["text"].encode("utf-8")
        for facet in record.get("facets", []):
            start, end = facet["index"]["byteStart"], facet["index"]["byteEnd"]
            covered = text_bytes[start:end].decode("utf-8")
            after_multibyte_text += len(text_bytes[:start].decode("utf-8")) != start
            (feature,) = facet["features"]
            kind = feature["$type"].removeprefix("app.bsky.richtext.facet#")
            seen[kind] += 1
            if kind == "mention":
                assert covered == "@" + handles[feature["did"]]
            elif kind == "tag":
                assert covered == "#" + feature["tag"]
            else:
                assert kind == "link"
                assert feature["uri"].startswith("https://")
                assert covered.removesuffix("...") in feature["uri"]
    assert min(seen["mention"], seen["tag"], seen["link"]) > 50
    assert after_multibyte_text > 100


def test_posts_are_multilingual(events: list[Event]) -> None:
    records = post_records(events)
    langs = Counter(lang for record in records for lang in record.get("langs", []))
    assert set(langs) == {"en", "ja", "pt", "es", "de", "fr", "ko", "ar"}
    text = "".join(record["text"] for record in records)
    scripts = {
        "hiragana or katakana": r"[\u3040-\u30ff]",
        "hangul": r"[\uac00-\ud7a3]",
        "arabic": r"[\u0600-\u06ff]",
        "accented latin": r"[àáâãçéêíóôõúüñßäöÀ-ÖØ-öø-ÿ]",
        "emoji": r"[\U0001F300-\U0001FAFF]",
    }
    for script, pattern in scripts.items():
        assert re.search(pattern, text), script
    display_names = "".join(page(index).display_name for index in range(PAGES))
    assert re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", display_names)
    assert re.search(r"[éüíç]", display_names)


def test_posts_carry_replies_and_embeds(events: list[Event]) -> None:
    records = [e["commit"]["record"] for e in events if kind_of(e) == "app.bsky.feed.post create"]
    replies = [record["reply"] for record in records if "reply" in record]
    assert 0.2 < len(replies) / len(records) < 0.4
    for reply in replies:
        for ref in (reply["parent"], reply["root"]):
            assert POST_URI.match(ref["uri"])
            assert CID.match(ref["cid"])
    embeds = Counter(record["embed"]["$type"] for record in records if "embed" in record)
    assert set(embeds) == {
        "app.bsky.embed.images",
        "app.bsky.embed.external",
        "app.bsky.embed.record",
    }


def test_likes_and_reposts_point_at_posts_often_seen_in_the_stream(
    events: list[Event],
) -> None:
    posted = {
        f"at://{e['did']}/app.bsky.feed.post/{e['commit']['rkey']}": e["commit"]["cid"]
        for e in events
        if kind_of(e) == "app.bsky.feed.post create"
    }
    engagements = [
        e["commit"]["record"]["subject"]
        for e in events
        if kind_of(e) in {"app.bsky.feed.like create", "app.bsky.feed.repost create"}
    ]
    for subject in engagements:
        assert POST_URI.match(subject["uri"])
        assert CID.match(subject["cid"])
        if subject["uri"] in posted:
            assert subject["cid"] == posted[subject["uri"]]
    in_stream = sum(subject["uri"] in posted for subject in engagements)
    assert in_stream > 0.05 * len(engagements)


def test_a_few_pages_get_most_of_the_likes(events: list[Event]) -> None:
    likes_per_author = Counter(
        POST_URI.match(e["commit"]["record"]["subject"]["uri"]).group(1)  # type: ignore[union-attr]
        for e in events
        if kind_of(e) == "app.bsky.feed.like create"
    )
    top_one_percent = sum(count for _, count in likes_per_author.most_common(PAGES // 100))
    assert top_one_percent / likes_per_author.total() > 0.3
    followed = Counter(
        e["commit"]["record"]["subject"]
        for e in events
        if kind_of(e) == "app.bsky.graph.follow create"
    )
    assert followed.most_common(1)[0][0] == page(0).did


def test_actors_are_spread_over_the_whole_population(events: list[Event]) -> None:
    actors = {e["did"] for e in events if kind_of(e) == "app.bsky.feed.like create"}
    assert len(actors) > 0.9 * PAGES


def test_pages_have_stable_unique_dids_and_handles() -> None:
    pages = [page(index) for index in (*range(3_000), 10**6, 10**8)]
    assert len({p.did for p in pages}) == len(pages)
    assert len({p.handle for p in pages}) == len(pages)
    assert all(DID.match(p.did) for p in pages)
    assert all(re.match(r"^[a-z0-9-]+\.bsky\.social$", p.handle) for p in pages)
    assert page(42) == page(42)


def test_write_firehose_writes_lines_and_reports_progress(tmp_path: Path) -> None:
    spec = FirehoseSpec(events=12_345, pages=300, seed=1)
    path = tmp_path / "firehose.jsonl"
    progress: list[int] = []

    written = write_firehose(spec, path, progress.append)

    assert written == 12_345
    assert progress == [10_000, 12_345]
    content = path.read_bytes()
    assert content.endswith(b"\n")
    assert content.split(b"\n")[:-1] == list(generate_firehose(spec))


def test_an_invalid_spec_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid firehose spec"):
        generate_firehose(FirehoseSpec(events=10, pages=0))


def generated_times(tmp_path: Path, *options: str) -> tuple[int, list[int]]:
    """`hubbub generate firehose` with these options: exit code and each event's time."""
    out = tmp_path / "firehose.jsonl"
    result = CliRunner().invoke(
        app,
        ["generate", "firehose", "--events", "500", "--pages", "50", "--out", str(out), *options],
    )
    if result.exit_code != 0:
        return result.exit_code, []
    return 0, [json.loads(line)["time_us"] for line in out.read_text().splitlines()]


def test_the_firehose_starts_now_by_default(tmp_path: Path) -> None:
    before = time.time() * 1_000_000
    code, times = generated_times(tmp_path)
    assert code == 0
    assert before <= times[0] <= time.time() * 1_000_000 + 1_000_000


def test_the_firehose_starts_when_asked(tmp_path: Path) -> None:
    code, times = generated_times(tmp_path, "--start", "2026-07-04T12:00+02:00")
    assert code == 0
    start = datetime(2026, 7, 4, 10, tzinfo=UTC).timestamp() * 1_000_000
    assert start < times[0] < start + 1_000_000
    code, naive = generated_times(tmp_path, "--start", "2026-07-04T10:00")
    assert naive == times  # no offset: UTC


def test_an_unreadable_start_is_refused_with_an_example(tmp_path: Path) -> None:
    out = tmp_path / "firehose.jsonl"
    result = CliRunner().invoke(
        app, ["generate", "firehose", "--events", "5", "--out", str(out), "--start", "July 4th"]
    )
    assert result.exit_code == 2
    assert "is not an ISO 8601 time, e.g. 2026-07-04T12:00Z" in result.output
    assert not out.exists()


def test_the_population_introduces_every_account_by_handle_and_display_name() -> None:
    lines = list(generate_population(FirehoseSpec(events=0, pages=300, start_us=10**15)))
    mapping = JetstreamMapping(FixedClock(), max_event_bytes=1 << 20)
    decoded = mapping.decode(lines, trace="t")
    batch = mapping.map(decoded, {}, "t")
    assert not decoded.rejected
    assert not batch.rejected
    seen = [event for event in batch.events if isinstance(event, PageSeen)]
    handles = {e.page: e.handle for e in seen if e.handle}
    names = {e.page: e.display_name for e in seen if e.display_name}
    everyone = [page(index) for index in range(300)]
    assert handles == {p.did: p.handle for p in everyone}
    assert names == {p.did: p.display_name for p in everyone}
    times = [json.loads(line)["time_us"] for line in lines]
    assert times == sorted(times)
    assert times[0] > 10**15
    assert len(set(times)) == len(times)
