"""Spike detection: is the recent window of a watched series far above its usual level?

The recent window's count is compared with the counts of the `baseline` windows before
it, as commercial listening tools do (Meltwater compares the last hour with the 12
before it; Socialmetrix 24 hours with the 7 days before, at k = 1.5, 2 or 3). With a
`season` (24 for hourly windows), the baseline is instead the same window of the
`baseline` previous seasons: a series that rises every evening is then compared with
its previous evenings, not with its mornings. A spike is a count that is

- above the baseline's usual level plus `k` deviations: the mean plus k·sigma by default
  (`statistic="mean"`), or, with `statistic="robust"`, the median plus k times the
  scaled median absolute deviation, which an earlier spike inside the baseline does not
  throw off. The deviation is never taken below the square root of the level, the noise
  of a count that merely keeps its rate, so a flat baseline does not make every wiggle
  a spike;
- at least `min_ratio` times the usual level, so the daily rise of a busy series,
  however regular, is not news either;
- at least `min_volume`, so that 0 → 3 posts is not news;
- not within `cooldown` windows of the last spike of the same series, so a spike that
  lasts does not alert again and again.

The detector is evaluated every minute over sliding windows, so an alert comes within a
minute of the recent window crossing the threshold.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

Statistic = Literal["mean", "robust"]

SENSITIVITY: Final = {"high": 1.5, "medium": 2.0, "low": 3.0}
"""Named values of `k`: a higher sensitivity alerts on smaller rises."""


@dataclass(frozen=True)
class Rule:
    k: float = SENSITIVITY["medium"]
    baseline: int = 12
    min_volume: int = 20
    min_ratio: float = 1.5
    cooldown: int = 6
    season: int | None = None
    statistic: Statistic = "mean"

    @property
    def history(self) -> int:
        """Windows needed before the first one that can be judged."""
        return self.baseline * (self.season or 1)

    def __post_init__(self) -> None:
        if (
            self.k <= 0
            or self.baseline < 2
            or self.min_volume < 0
            or self.min_ratio < 1
            or self.cooldown < 0
            or (self.season is not None and self.season < 1)
            or self.statistic not in ("mean", "robust")
        ):
            raise ValueError(f"invalid spike rule {self}")


@dataclass(frozen=True)
class Spike:
    window: int
    count: int
    usual: float
    threshold: float

    @property
    def ratio(self) -> float:
        """How many times the usual level the window holds."""
        return self.count / self.usual if self.usual else math.inf


_MAD_TO_SIGMA: Final = 1.4826  # for normal noise, the MAD times this is the deviation


def threshold(
    history: Sequence[int], k: float, statistic: Statistic = "mean"
) -> tuple[float, float]:
    """The baseline's usual level, and the count above which a window is a spike."""
    if statistic == "mean":
        usual = statistics.fmean(history)
        deviation = statistics.pstdev(history, usual)
    else:
        usual = statistics.median(history)
        deviation = _MAD_TO_SIGMA * statistics.median(abs(n - usual) for n in history)
    return usual, usual + k * max(deviation, math.sqrt(usual), 1.0)


def detect(counts: Sequence[int], rule: Rule = Rule()) -> list[Spike]:
    """The spikes of a series of window counts (oldest first), as a live detector that
    saw the windows one by one would have raised them."""
    spikes: list[Spike] = []
    quiet_until = -1
    step = rule.season or 1
    for window in range(rule.history, len(counts)):
        count = counts[window]
        history = counts[window - rule.history : window : step]
        usual, limit = threshold(history, rule.k, rule.statistic)
        big = count >= rule.min_volume and count >= rule.min_ratio * usual
        if window > quiet_until and big and count > limit:
            spikes.append(Spike(window, count, usual, limit))
            quiet_until = window + rule.cooldown
    return spikes
