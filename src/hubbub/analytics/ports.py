"""The rollup store port: what the analytics worker writes and the reports read.

Two adapters pass one contract suite (`tests/contract/test_rollup_stores.py`): DuckDB,
the embedded default, and PostgreSQL, to scale out.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from hubbub.analytics.rollups import Contribution, Deltas


class StalePositions(RuntimeError):
    """The stored positions moved since the batch was read: another writer, or a rebuild
    swapped in. Nothing was written; read the positions again and fold from there."""


class RejectedBatch(ValueError):
    """The batch cannot be folded or stored as it is: the fold failed on its records, or
    the store cannot hold a value it holds (a number out of range, a character its text
    type refuses). Folded again it fails the same way; nothing was written. A store
    that is down or slow raises its own errors instead: those are worth retrying."""


class RollupStore(Protocol):
    def positions(self) -> dict[str, int]:
        """The last log position folded, per topic."""
        ...

    def contributions(self, posts: set[str]) -> dict[str, Contribution]:
        """What these posts added so far (posts never seen are left out); `RejectedBatch`
        if the store cannot look one of them up."""
        ...

    def apply(self, deltas: Deltas, positions: dict[str, int], since: dict[str, int]) -> None:
        """Add the deltas, record the newly tracked terms and move the positions, all or
        nothing. `since` holds the positions the batch was read after; if the stored ones
        differ, nothing is written and `StalePositions` is raised, so a batch can never be
        counted twice, whoever else writes. `RejectedBatch` if the store cannot hold a
        value of the deltas (nothing is written either)."""
        ...

    def prune(self, horizons: dict[str, int]) -> int:
        """Delete the rows of each tier (`minute`, `hour`, `day`) before its horizon (a
        minute), and the records of posts before the `posts` horizon; returns rows deleted."""
        ...

    def compact(self, *, force: bool = False) -> int:
        """Merge rows and restore the layout reads rely on, when enough was appended (or
        always, with `force`); sums never change. Returns the tables rewritten."""
        ...

    def query(self, sql: str, parameters: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Rows of a read query written with `?` placeholders, beside the writer."""
        ...

    def close(self) -> None: ...


class StagedRollups(Protocol):
    """Fresh rollups being built beside the live ones (a rebuild), and their swap.

    `store` starts empty, whatever the live rollups hold, and nothing written to it is
    seen by readers of the live rollups before `promote`. Promotion replaces the live
    rollups whole (not merged), in one step; a live store already open follows it (the
    DuckDB one within `LiveDuckDB.CHECK_EVERY_S`). Call `promote` or `discard` once:
    both close `store`. A discard leaves the live rollups as they were. A store that
    fails raises its own error; a promotion that raises leaves the old rollups live.
    """

    @property
    def store(self) -> RollupStore: ...

    def promote(self) -> str:
        """Make these the live rollups atomically, and close them; readers of the live
        rollups see the old ones up to the swap and these after it. Returns their name."""
        ...

    def discard(self) -> None:
        """Drop them (a rebuild that failed or was stopped)."""
        ...


@runtime_checkable
class CopyServer(Protocol):
    """A store whose files only its process can copy consistently (embedded DuckDB):
    it serves the copies a backup asks for while the role runs."""

    async def serve_copies(self) -> None:
        """Make the copies asked for, until cancelled."""
        ...
