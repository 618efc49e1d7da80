"""The IngestState contract, run against every adapter (see hubbub.ingest.ports).

Adapters are built through `bootstrap.open_ingest_state`, as the platform builds them.
SQLite is the only adapter so far; a new one joins the `params` of `open_state`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from hubbub.bootstrap import open_ingest_state
from hubbub.eventlog.retention import DAY_S
from hubbub.ingest.ports import IngestState
from hubbub.kernel.clock import FixedClock
from hubbub.settings import Settings

OpenState = Callable[..., Awaitable[IngestState]]
REF_DAYS = 10.0
LIFETIME_S = REF_DAYS * DAY_S


@pytest.fixture(params=["sqlite"])
async def open_state(tmp_path: Path) -> AsyncIterator[OpenState]:
    """A factory that opens the same state again each call, as a restarted process would."""
    opened: list[IngestState] = []

    async def open_again(
        clock: FixedClock | None = None, ref_days: float = REF_DAYS
    ) -> IngestState:
        settings = Settings(data_dir=tmp_path, ingest_ref_days=ref_days)
        state = open_ingest_state(settings, clock or FixedClock())
        opened.append(state)
        return state

    yield open_again
    for state in opened:
        await state.close()


async def test_get_refs_returns_only_the_keys_it_knows(open_state: OpenState) -> None:
    state = await open_state()
    await state.apply_refs({"like-1": "post-1", "like-2": "post-2"}, [])
    assert await state.get_refs(["like-1", "missing"]) == {"like-1": "post-1"}
    assert await state.get_refs([]) == {}


async def test_putting_a_key_again_overwrites_it(open_state: OpenState) -> None:
    state = await open_state()
    await state.apply_refs({"like-1": "post-1"}, [])
    await state.apply_refs({"like-1": "post-9"}, [])
    assert await state.get_refs(["like-1"]) == {"like-1": "post-9"}


async def test_applying_the_same_refs_twice_changes_nothing(open_state: OpenState) -> None:
    state = await open_state()
    for _ in range(2):
        await state.apply_refs({"like-1": "post-1", "like-2": "post-2"}, ["like-3"])
    assert await state.get_refs(["like-1", "like-2", "like-3"]) == {
        "like-1": "post-1",
        "like-2": "post-2",
    }


async def test_deleting_forgets_a_key_and_an_unknown_one_is_ignored(
    open_state: OpenState,
) -> None:
    state = await open_state()
    await state.apply_refs({"like-1": "post-1", "like-2": "post-2"}, [])
    await state.apply_refs({}, ["like-1", "never-seen"])
    assert await state.get_refs(["like-1", "like-2", "never-seen"]) == {"like-2": "post-2"}


async def test_many_keys_in_one_call(open_state: OpenState) -> None:
    state = await open_state()
    refs = {f"like-{n}": f"post-{n}" for n in range(25_000)}
    await state.apply_refs(refs, [])
    assert await state.get_refs(refs) == refs


async def test_an_unknown_cursor_is_none(open_state: OpenState) -> None:
    state = await open_state()
    assert await state.load_cursor("jetstream") is None


async def test_refs_and_cursors_survive_a_restart(open_state: OpenState) -> None:
    first = await open_state()
    await first.apply_refs({"like-1": "post-1"}, [])
    await first.save_cursor("jetstream", 41)
    await first.save_cursor("jetstream", 42)
    await first.save_cursor("mastodon", 7)
    await first.close()
    again = await open_state()
    assert await again.load_cursor("jetstream") == 42
    assert await again.load_cursor("mastodon") == 7
    assert await again.get_refs(["like-1"]) == {"like-1": "post-1"}


async def test_a_ref_is_kept_half_its_lifetime_and_forgotten_after_it(
    open_state: OpenState,
) -> None:
    clock = FixedClock()
    state = await open_state(clock)
    await state.apply_refs({"old": "post-1"}, [])
    clock.advance(LIFETIME_S * 0.49)
    await state.apply_refs({"busy": "post-2"}, [])  # writes go on, as in a running ingest
    clock.advance(LIFETIME_S * 0.02)
    await state.apply_refs({"busy": "post-2"}, [])
    assert await state.get_refs(["old"]) == {"old": "post-1"}
    clock.advance(LIFETIME_S * 0.5)
    await state.apply_refs({"busy": "post-2"}, [])
    assert await state.get_refs(["old", "busy"]) == {"busy": "post-2"}


async def test_a_ref_put_again_lives_again(open_state: OpenState) -> None:
    clock = FixedClock()
    state = await open_state(clock)
    await state.apply_refs({"like-1": "post-1"}, [])
    for _ in range(4):
        clock.advance(LIFETIME_S * 0.5)
        await state.apply_refs({"like-1": "post-1"}, [])
    assert await state.get_refs(["like-1"]) == {"like-1": "post-1"}


async def test_cursors_never_expire(open_state: OpenState) -> None:
    clock = FixedClock()
    state = await open_state(clock)
    await state.save_cursor("jetstream", 42)
    for n in range(4):
        clock.advance(LIFETIME_S)
        await state.apply_refs({f"like-{n}": "post"}, [])
    assert await state.load_cursor("jetstream") == 42


async def test_without_a_lifetime_refs_never_expire(open_state: OpenState) -> None:
    clock = FixedClock()
    state = await open_state(clock, ref_days=0)
    await state.apply_refs({"like-1": "post-1"}, [])
    for n in range(4):
        clock.advance(1000 * DAY_S)
        await state.apply_refs({f"like-{n + 2}": "post"}, [])
    assert await state.get_refs(["like-1"]) == {"like-1": "post-1"}


async def test_a_key_put_and_deleted_in_one_call_ends_deleted(open_state: OpenState) -> None:
    state = await open_state()
    await state.apply_refs({"like-1": "post-1"}, ["like-1"])
    assert await state.get_refs(["like-1"]) == {}
