"""The `hubbub` command as a person runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hubbub.cli import app
from tests.conftest import FIXTURES, require_service

SAMPLE = FIXTURES / "jetstream-sample.jsonl"


@pytest.fixture
def hubbub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("HUBBUB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HUBBUB_LOG_LEVEL", "warning")
    return CliRunner()


def invoke(runner: CliRunner, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout


def test_replay_prints_one_json_summary_and_exits_0(hubbub: CliRunner) -> None:
    code, out = invoke(hubbub, "ingest", "replay", str(SAMPLE), "--source", "jetstream", "--json")
    assert code == 0
    summary = json.loads(out)
    assert {k: summary[k] for k in ("accepted", "skipped", "rejected", "duplicates")} == {
        "accepted": 145,
        "skipped": 7,
        "rejected": 0,
        "duplicates": 0,
    }
    code, out = invoke(hubbub, "ingest", "replay", str(SAMPLE), "--source", "jetstream", "--json")
    assert json.loads(out)["duplicates"] == 145


def test_a_file_of_garbage_is_processed_and_dead_lettered(
    hubbub: CliRunner, tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_bytes(b'{"did":\n\xff\xfe\xfd\n[1, 2]\n\n{"did": "did:plc:x", "time_us": -5}\n')
    code, out = invoke(hubbub, "ingest", "replay", str(garbage), "--source", "jetstream", "--json")
    assert code == 0
    assert json.loads(out)["rejected"] == 4

    code, out = invoke(hubbub, "deadletter", "list", "--json")
    letters = [json.loads(line) for line in out.splitlines()]
    assert [letter["position"] for letter in letters] == [1, 2, 3, 4]
    assert letters[1]["reason"].startswith("invalid UTF-8")
    assert letters[1]["raw"] == "\\xff\\xfe\\xfd"

    code, out = invoke(hubbub, "deadletter", "show", "4")
    assert code == 0
    assert "time_us" in json.loads(out)["reason"]
    code, _ = invoke(hubbub, "deadletter", "show", "99")
    assert code == 2


def test_a_mastodon_file_of_statuses_replays(hubbub: CliRunner, tmp_path: Path) -> None:
    statuses = tmp_path / "statuses.jsonl"
    status = json.loads((FIXTURES / "mastodon-status-example.json").read_text())
    statuses.write_text(
        json.dumps(status) + "\n" + json.dumps({"event": "delete", "payload": status["id"]}) + "\n"
    )
    code, out = invoke(hubbub, "ingest", "replay", str(statuses), "--source", "mastodon", "--json")
    assert code == 0
    assert json.loads(out)["accepted"] == 2


def test_log_stats_shows_topics(hubbub: CliRunner) -> None:
    invoke(hubbub, "ingest", "replay", str(SAMPLE), "--source", "jetstream", "--json")
    code, out = invoke(hubbub, "log", "stats", "--json")
    assert code == 0
    stats = json.loads(out)
    assert stats["backend"] == "sqlite"
    counts = {topic["topic"]: topic["count"] for topic in stats["topics"]}
    assert counts == {"posts": 17, "engagement": 128, "pages": 7, "deletes": 1}


def test_an_unknown_adapter_fails_at_start_with_the_names_that_exist(
    hubbub: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUBBUB_EVENT_LOG", "kafka")
    result = hubbub.invoke(app, ["log", "stats"])
    assert result.exit_code == 2
    assert "event_log: Input should be 'sqlite' or 'jetstream'" in result.stderr


def test_replay_of_a_missing_file_or_source_is_a_clear_error(hubbub: CliRunner) -> None:
    result = hubbub.invoke(app, ["ingest", "replay", "nope.jsonl", "--source", "jetstream"])
    assert result.exit_code == 2
    assert "no such file" in result.stderr
    result = hubbub.invoke(app, ["ingest", "replay", str(SAMPLE), "--source", "twitter"])
    assert result.exit_code == 2
    assert "unknown source 'twitter'" in result.stderr


def test_replay_at_a_rate_takes_as_long_as_it_should(hubbub: CliRunner) -> None:
    import time

    started = time.monotonic()
    code, out = invoke(
        hubbub, "ingest", "replay", str(SAMPLE), "--source", "jetstream", "--rate", "200", "--json"
    )
    elapsed = time.monotonic() - started
    assert code == 0
    assert json.loads(out)["accepted"] == 145
    assert elapsed >= 152 / 200 * 0.8  # 152 lines at 200 lines/s


def test_the_demo_runs_a_live_firehose_and_says_where_to_look(hubbub: CliRunner) -> None:
    result = hubbub.invoke(app, ["demo", "--duration", "2", "--rate", "1000", "--port", "0"])
    assert result.exit_code == 0, result.stderr
    assert "deadletter list" in result.stderr
    assert "/metrics" in result.stderr
    assert "sign in as demo@example.com, password " in result.stderr
    code, out = invoke(hubbub, "log", "stats", "--json")
    assert code == 0
    counts = {topic["topic"]: topic["count"] for topic in json.loads(out)["topics"]}
    assert counts["engagement"] > 500
    assert counts["posts"] > 50
    assert "/listening" in result.stderr
    assert counts["matches"] > 0  # the demo workspace's streams, matched as the posts came


def test_mentions_query_answers_from_what_was_replayed(hubbub: CliRunner, tmp_path: Path) -> None:
    statuses = tmp_path / "statuses.jsonl"
    status = json.loads((FIXTURES / "mastodon-status-example.json").read_text())
    statuses.write_text(json.dumps(status) + "\n")
    invoke(hubbub, "ingest", "replay", str(statuses), "--source", "mastodon", "--json")
    code, out = invoke(hubbub, "mentions", "query", "@EUG", "--json")
    assert code == 0
    (page,) = json.loads(out)
    assert page["handle"] == "Gargron@mastodon.social"
    assert page["followers"] == 322930
    elsewhere = tmp_path / "elsewhere"
    invoke(hubbub, "--data-dir", str(elsewhere), "ingest", "replay", str(statuses),
           "--source", "mastodon", "--json")  # fmt: skip
    code, out = invoke(hubbub, "mentions", "query", "gargr", "--data-dir", str(elsewhere), "--json")
    assert [page["id"] for page in json.loads(out)] == ["https://mastodon.social/@Gargron"]
    result = hubbub.invoke(app, ["mentions", "query", "   "])
    assert result.exit_code == 2
    assert "empty" in result.stderr


def test_bench_mentions_prints_one_json_object(hubbub: CliRunner) -> None:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    code, out = invoke(
        hubbub, "bench", "mentions", "--pages", "2000", "--queries", "300",
        "--http-seconds", "1", "--postgres-queries", "50", "--json",
    )  # fmt: skip
    assert code == 0
    result = json.loads(out)
    assert result["pages"] == 2000
    assert result["build_s"] >= 0
    assert result["rss_mb"] > 0
    assert 0 < result["p50_us"] <= result["p99_us"]
    assert result["updates_per_s"] > 0
    assert result["http_errors"] == 0
    assert result["http_rps"] > 0
    assert 0 < result["http_p50_ms"] <= result["http_p99_ms"]
    assert len(result["http_runs"]) == 5
    assert result["restart_ready_s"] > 0
    assert 0 < result["replica_anon_mb"] < result["rss_mb"]
    assert result["vs_postgres_p99_ratio"] > 1
