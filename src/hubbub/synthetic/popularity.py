"""Skewed draws: Zipf-shaped page popularity, and cumulative tables for weighted choices."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from typing import Final

# A small exact table stays in the CPU cache, which makes bisect several times faster;
# past it the continuous approximation is off by well under 0.1%.
_EXACT_ZIPF_RANKS: Final = 1 << 10


class ZipfRanks:
    """Draws a 0-based rank r with probability proportional to (r + 1) ** -exponent.

    The first ranks use an exact cumulative table (bisect); the long tail, where single
    ranks hardly matter, inverts the integral of x ** -exponent so memory stays bounded
    for tens of millions of pages.
    """

    def __init__(self, population: int, exponent: float) -> None:
        head = min(population, _EXACT_ZIPF_RANKS)
        self.cumulative = list(itertools.accumulate(k**-exponent for k in range(1, head + 1)))
        self._head = head
        self._population = population
        self._exponent_minus_one = exponent - 1.0
        self._inverse_power = 1.0 / (1.0 - exponent)
        self.head_mass = self.cumulative[-1]
        self._tail_start = (head + 0.5) ** (1.0 - exponent)
        tail_mass = (self._tail_start - (population + 0.5) ** (1.0 - exponent)) / (exponent - 1.0)
        self.total = self.head_mass + tail_mass

    def rank(self, uniform: float) -> int:
        mass = uniform * self.total
        if mass < self.head_mass:
            return bisect.bisect_left(self.cumulative, mass)
        return self.tail_rank(mass)

    def tail_rank(self, mass: float) -> int:
        """The rank past the exact table where the cumulative mass reaches ``mass``."""
        rest = self._tail_start - self._exponent_minus_one * (mass - self.head_mass)
        x = int(rest**self._inverse_power + 0.5) if rest > 0 else self._population
        return min(self._population, max(self._head + 1, x)) - 1


def cumulative_weights(weights: Sequence[float]) -> list[float]:
    """The running shares of ``weights``, ending at exactly 1.0: bisect a uniform draw."""
    total = sum(weights)
    cumulative = [running / total for running in itertools.accumulate(weights)]
    cumulative[-1] = 1.0
    return cumulative
