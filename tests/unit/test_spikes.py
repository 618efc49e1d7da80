"""Spike detection on synthetic series: spikes over a quiet Poisson baseline.

Each series is three weeks of hourly counts at its own rate (2 to 400 posts an hour,
with a daily rhythm of ±30%), with two spikes of 3 to 6 times the rate, lasting 1 to 3
hours, a day or more apart, in its last week. The test reports the detection rate and
the false alarms, and holds them to bounds a listening team would accept.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from hubbub.analytics.spikes import SENSITIVITY, Rule, detect, threshold

HOURS = 21 * 24


def synthetic(rng: np.random.Generator, rate: float) -> tuple[list[int], list[int]]:
    """Counts and the hours where a spike starts."""
    hours = np.arange(HOURS)
    rhythm = rate * (1 + 0.3 * np.sin(2 * np.pi * hours / 24))
    first = int(rng.integers(HOURS - 160, HOURS - 90))
    starts = [first, first + int(rng.integers(24, 80))]  # two events, a day or more apart
    for start in starts:
        rhythm[start : start + rng.integers(1, 4)] *= rng.uniform(3, 6)
    return rng.poisson(rhythm).tolist(), starts


def score(rule: Rule, series: int = 300, seed: int = 1) -> tuple[float, float]:
    """Share of spikes detected within their first two hours; false alarms per 1,000
    quiet hours."""
    rng = np.random.default_rng(seed)
    found = missed = false = quiet = 0
    for _ in range(series):
        counts, starts = synthetic(rng, rate=float(rng.uniform(2, 400)))
        alerts = [spike.window for spike in detect(counts, rule)]
        for start in starts:
            hit = any(start <= window <= start + 1 for window in alerts)
            found, missed = found + hit, missed + (not hit)
        spiky = {h for start in starts for h in range(start, start + 3 + rule.cooldown)}
        false += sum(window not in spiky for window in alerts)
        quiet += HOURS - rule.history - len(spiky)
    return found / (found + missed), 1000 * false / quiet


SEASONAL = Rule(baseline=7, season=24)  # each hour against the same hour of the last week


def test_most_spikes_are_caught_and_false_alarms_are_rare() -> None:
    detection, false_per_1000 = score(SEASONAL)
    print(f"seasonal: {detection:.1%} detected, {false_per_1000:.2f} false per 1,000 h")
    assert detection >= 0.95
    assert false_per_1000 <= 3  # about one false alarm per watch every two weeks


def test_a_trailing_baseline_mistakes_a_daily_rhythm_for_spikes() -> None:
    detection, false_per_1000 = score(Rule())  # the last hour against the 12 before it
    print(f"trailing: {detection:.1%} detected, {false_per_1000:.2f} false per 1,000 h")
    assert false_per_1000 > 3 * score(SEASONAL)[1]


def test_a_lower_sensitivity_raises_fewer_false_alarms() -> None:
    scores = {name: score(Rule(k=k, baseline=7, season=24)) for name, k in SENSITIVITY.items()}
    assert scores["high"][1] >= scores["medium"][1] >= scores["low"][1]
    assert min(detected for detected, _ in scores.values()) >= 0.95  # spikes of 3x or more


def test_a_quiet_series_that_barely_moves_never_alerts() -> None:
    assert detect([10, 11, 10, 10, 12, 10, 11, 10, 10, 11, 10, 10, 14, 13]) == []


def test_small_volumes_and_repeats_do_not_alert() -> None:
    assert detect([0] * 12 + [15], Rule(min_volume=20)) == []  # 0 → 15: not news yet
    lasting = detect([50] * 12 + [400] * 5 + [50] * 10 + [400])
    assert [spike.window for spike in lasting] == [12, 27]  # once, then again after the cooldown


def test_the_deviation_never_falls_below_counting_noise() -> None:
    usual, limit = threshold([100] * 12, k=2)
    assert (usual, limit) == (100, 100 + 2 * math.sqrt(100))


def test_an_earlier_spike_in_the_baseline_hides_the_next_from_the_mean_only() -> None:
    counts = [60, 55, 300, 50, 45, 62, 58, 190]  # one spike already in the baseline
    assert detect(counts, Rule(baseline=7)) == []  # the deviation is inflated by the earlier spike
    (spike,) = detect(counts, Rule(baseline=7, statistic="robust"))
    assert (spike.window, spike.usual) == (7, 58)


@pytest.mark.parametrize("statistic", ["mean", "robust"])
def test_both_statistics_catch_spikes_with_few_false_alarms(statistic: str) -> None:
    detection, false_per_1000 = score(Rule(baseline=7, season=24, statistic=statistic))  # type: ignore[arg-type]
    print(f"{statistic}: {detection:.1%} detected, {false_per_1000:.2f} false per 1,000 h")
    assert detection >= 0.95
    assert false_per_1000 <= 3


def test_rules_are_checked() -> None:
    with pytest.raises(ValueError, match="invalid spike rule"):
        Rule(k=0)
