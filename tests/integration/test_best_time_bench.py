"""`hubbub bench best-time`: on a short synthetic firehose with a planted daily rhythm,
the model trained on the first days ranks the planted half-hours first, and the day it
never saw bears that out."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from hubbub.cli import app


def test_the_planted_peaks_are_found_and_hold_on_the_held_back_day() -> None:
    done = CliRunner().invoke(app, ["bench", "best-time", "--days", "3", "--json"])
    assert done.exit_code == 0, done.output[-3000:]
    result = json.loads(done.stdout)

    assert result["days"] == 3
    assert result["slots_planted"] == result["top_k"] == 6  # three peaks on two days trained
    assert result["hit_rate"] == 1.0
    assert result["holdout_hit_rate"] == 1.0
    assert result["holdout_lift"] > 1.2
    assert result["posts_trained"] > 0
    assert result["posts_held_back"] > 0
    assert result["peaks_local"] == ["08:30", "12:30", "19:30"]
