"""The synthetic firehose's planted daily rhythm: posts of the peak half-hours draw likes."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from hubbub.synthetic.firehose import FirehoseSpec, Rhythm, generate_firehose

START_US = int(datetime(2026, 3, 23, 8, tzinfo=UTC).timestamp() * 1_000_000)


def test_posts_made_in_a_peak_draw_the_planted_share_of_likes() -> None:
    rhythm = Rhythm(zone="UTC", peaks=(16,), share=0.5)  # 08:00-08:30 UTC
    spec = FirehoseSpec(events=20_000, pages=2_000, start_us=START_US, rate_per_s=5, rhythm=rhythm)
    peak_posts: set[str] = set()
    likes = on_peak_posts = 0
    for line in generate_firehose(spec):
        event = msgspec.json.decode(line)
        commit = event.get("commit", {})
        if commit.get("operation") != "create":
            continue
        if commit["collection"] == "app.bsky.feed.post" and event["time_us"] < START_US + 1800e6:
            peak_posts.add(f"at://{event['did']}/app.bsky.feed.post/{commit['rkey']}")
        elif commit["collection"] == "app.bsky.feed.like":
            likes += 1
            on_peak_posts += commit["record"]["subject"]["uri"] in peak_posts
    assert peak_posts
    assert on_peak_posts / likes > 0.45


def test_without_a_rhythm_the_stream_is_the_same_as_before() -> None:
    plain = FirehoseSpec(events=2_000, pages=500)
    quiet = FirehoseSpec(events=2_000, pages=500, rhythm=Rhythm(zone="UTC", peaks=(), share=0.5))
    assert list(generate_firehose(plain)) == list(generate_firehose(quiet))
