"""`hubbub bench soak`: the whole platform under a firehose and HTTP load, briefly and at a
low rate, reports memory, lag, rates and errors that make sense, and draws its curves."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from hubbub.benchmarks.soak import ROLES
from hubbub.cli import app

MINUTES = 0.2
RATE = 400
PAGES = 2_000


def test_a_short_soak_reports_sane_figures_and_no_errors(tmp_path: Path) -> None:
    plot = tmp_path / "soak.png"
    arguments = [
        "--minutes", str(MINUTES), "--rate", str(RATE), "--http-rate", "5", "--sample-s", "1",
        "--pages", str(PAGES), "--plot", str(plot),
    ]  # fmt: skip
    done = CliRunner().invoke(app, ["bench", "soak", *arguments, "--json"])
    assert done.exit_code == 0, done.output[-3000:]
    result = json.loads(done.stdout)

    assert result["errors"] == 0, (result["error_detail"], result["error_examples"])
    assert set(result["error_detail"].values()) == {0}
    assert result["minutes"] == MINUTES
    assert result["measured_s"] >= MINUTES * 60
    assert result["samples"] >= MINUTES * 60 / 2
    assert 0 < result["startup_s"] < 600

    every_process = {*ROLES, "supervisor", "total"}
    assert set(result["rss_mb_end"]) == every_process
    assert all(mb > 10 for mb in result["rss_mb_end"].values())
    assert set(result["rss_growth_pct_by_role"]) == every_process
    total_before = result["rss_mb_after_warmup"]["total"]
    total_after = result["rss_mb_end"]["total"]
    assert result["rss_growth_pct"] == round((total_after - total_before) / total_before * 100, 1)
    assert -50 < result["rss_growth_pct"] < 100

    assert {"mentions", "analytics", "listening"} <= set(result["max_lag_s_by_role"])
    assert 0 <= result["max_lag_s"] < 60
    assert result["max_lag_s"] == max(result["max_lag_s_by_role"].values())

    assert RATE * 0.5 < result["events_per_s"] < RATE * 1.5
    assert result["log_events_per_s"] > 0
    assert result["work"]["searches"] > 0
    assert result["work"]["watches"] > 0
    assert result["work"]["matches"] > 0, "listening matched posts"
    assert result["work"]["pages_seen"] > 0, "the mentions index had pages to fold"
    assert result["introduced"] == 2 * PAGES, "each account's handle and display name"
    assert result["analytics_memory_limit"] == "1GB"

    assert result["http_requests"] >= 5 * MINUTES * 60 * 0.5
    assert 0 < result["http_p50_ms"] <= result["http_p99_ms"]
    assert set(result["http_by_kind"]) == {"mentions", "reports"}

    assert Path(result["plot"]) == plot
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert Path(result["log"]).exists()


def test_a_soak_the_disk_cannot_hold_is_refused_before_it_starts(tmp_path: Path) -> None:
    arguments = ["--minutes", "100000", "--rate", "100000000", "--plot", str(tmp_path / "s.png")]
    refused = CliRunner().invoke(app, ["bench", "soak", *arguments, "--json"])
    assert refused.exit_code == 2
    assert "GiB" in refused.output
    assert "TMPDIR" in refused.output
    assert not (tmp_path / "s.log").exists(), "nothing started"
