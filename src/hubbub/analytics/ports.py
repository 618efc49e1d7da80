"""The rollup store port: what the analytics worker writes and the reports read.

Two adapters pass one contract suite (`tests/contract/test_rollup_stores.py`): DuckDB,
the embedded default, and PostgreSQL, to scale out.
"""

from __future__ import annotations

from typing import Any, Protocol

from hubbub.analytics.rollups import Contribution, Deltas


class RollupStore(Protocol):
    def positions(self) -> dict[str, int]:
        """The last log position folded, per topic."""
        ...

    def contributions(self, posts: set[str]) -> dict[str, Contribution]:
        """What these posts added so far (posts never seen are left out)."""
        ...

    def apply(self, deltas: Deltas, positions: dict[str, int]) -> None:
        """Add the deltas and move the positions, all or nothing."""
        ...

    def query(self, sql: str, parameters: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Rows of a read query written with `?` placeholders, beside the writer."""
        ...

    def close(self) -> None: ...
