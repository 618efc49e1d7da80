"""Each setting that picks an adapter builds the one it names, through the factory in
`bootstrap` the platform itself uses; a name that does not exist fails at start, naming
those that do. The scale-out adapters are built against the real servers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import ValidationError

from hubbub import bootstrap
from hubbub.analytics.duckdb import DuckDBStaging, LiveDuckDB
from hubbub.analytics.postgres import PostgresRollups, PostgresStaging
from hubbub.eventlog.jetstream import JetStreamEventLog, delete_streams
from hubbub.eventlog.sqlite import SqliteEventLog
from hubbub.kernel.cache import MemoryCache, RedisCache
from hubbub.kernel.clock import FixedClock, SystemClock
from hubbub.kernel.ratelimit import MemoryRateLimiter, RedisRateLimiter
from hubbub.mentions.memory import MemoryMentions
from hubbub.mentions.postgres import PostgresMentions
from hubbub.settings import Settings
from tests.conftest import NATS_URL, postgres_database, require_service, unique_name

CLOCK = SystemClock()

Open = Callable[[Settings, AsyncExitStack], Awaitable[list[object]]]


async def open_event_log(settings: Settings, stack: AsyncExitStack) -> list[object]:
    log = await bootstrap.open_event_log(settings)
    stack.push_async_callback(log.close)
    return [log]


async def open_mentions_backend(settings: Settings, stack: AsyncExitStack) -> list[object]:
    backend = await bootstrap.open_mentions_backend(settings.mentions_backend, settings)
    stack.push_async_callback(backend.close)
    return [backend]


async def open_mentions_shadow(settings: Settings, stack: AsyncExitStack) -> list[object]:
    assert settings.mentions_shadow is not None
    backend = await bootstrap.open_mentions_backend(settings.mentions_shadow, settings)
    stack.push_async_callback(backend.close)
    return [backend]


async def open_rollups(settings: Settings, stack: AsyncExitStack) -> list[object]:
    live = bootstrap.open_rollups(settings, CLOCK)
    stack.callback(live.close)
    staged = bootstrap.open_staged_rollups(settings)
    stack.callback(staged.discard)
    return [live, staged]


async def open_rate_limiter(settings: Settings, stack: AsyncExitStack) -> list[object]:
    limiter = bootstrap.open_rate_limiter(settings, FixedClock())
    stack.push_async_callback(limiter.close)
    return [limiter]


async def open_cache(settings: Settings, stack: AsyncExitStack) -> list[object]:
    cache = bootstrap.open_cache(settings)
    stack.push_async_callback(cache.close)
    return [cache]


OPENERS: dict[str, Open] = {
    "event_log": open_event_log,
    "mentions_backend": open_mentions_backend,
    "mentions_shadow": open_mentions_shadow,
    "analytics_store": open_rollups,
    "rate_limiter": open_rate_limiter,
    "cache": open_cache,
}
"""Each adapter setting, and how the platform builds what it picks."""

PICKED: dict[tuple[str, str], list[type]] = {
    ("event_log", "sqlite"): [SqliteEventLog],
    ("event_log", "jetstream"): [JetStreamEventLog],
    ("mentions_backend", "memory"): [MemoryMentions],
    ("mentions_backend", "postgres"): [PostgresMentions],
    ("mentions_shadow", "memory"): [MemoryMentions],
    ("mentions_shadow", "postgres"): [PostgresMentions],
    ("analytics_store", "duckdb"): [LiveDuckDB, DuckDBStaging],
    ("analytics_store", "postgres"): [PostgresRollups, PostgresStaging],
    ("rate_limiter", "memory"): [MemoryRateLimiter],
    ("rate_limiter", "redis"): [RedisRateLimiter],
    ("cache", "memory"): [MemoryCache],
    ("cache", "redis"): [RedisCache],
}
"""What each name of each adapter setting builds (the live and the staged rollups both)."""

SCALE_OUT = {"jetstream", "postgres", "redis"}


def allowed_names(setting: str) -> set[str]:
    """The names the setting's `Literal` type allows (`None` aside)."""

    def names(annotation: Any) -> set[str]:
        if isinstance(annotation, str):
            return {annotation}
        return {name for arg in get_args(annotation) for name in names(arg)}

    return names(Settings.model_fields[setting].annotation)


@asynccontextmanager
async def settings_naming(setting: str, name: str, data_dir: Path) -> AsyncIterator[Settings]:
    """Settings that set `setting` to `name`, pointed at a place of this test's own on
    the real server the adapter needs, cleared after."""
    prefix = unique_name("adapters")
    chosen: dict[str, Any] = {"data_dir": data_dir, "stream_prefix": prefix, setting: name}
    if name == "postgres":
        with postgres_database("hubbub_adapters") as dsn:
            yield Settings(**chosen, mentions_postgres_url=dsn, analytics_postgres_url=dsn)
    elif name == "jetstream":
        require_service("NATS", "127.0.0.1", 4222)
        try:
            yield Settings(**chosen, nats_url=NATS_URL)
        finally:
            await delete_streams(NATS_URL, prefix)
    else:
        if name == "redis":
            require_service("Redis", "127.0.0.1", 6379)
        yield Settings(**chosen)


def test_every_name_of_every_adapter_setting_is_tried() -> None:
    assert set(PICKED) == {(s, name) for s in OPENERS for name in allowed_names(s)}


def case(setting: str, name: str) -> Any:
    marks = [pytest.mark.services] if name in SCALE_OUT else []
    return pytest.param(setting, name, id=f"{setting}={name}", marks=marks)


@pytest.mark.parametrize(("setting", "name"), [case(*key) for key in PICKED])
async def test_a_setting_builds_the_adapter_it_names(
    setting: str, name: str, tmp_path: Path
) -> None:
    async with settings_naming(setting, name, tmp_path) as settings, AsyncExitStack() as stack:
        built = await OPENERS[setting](settings, stack)
        assert [type(adapter) for adapter in built] == PICKED[setting, name]


@pytest.mark.parametrize("setting", list(OPENERS))
def test_a_wrong_name_fails_at_start_naming_the_names_that_exist(
    setting: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"HUBBUB_{setting.upper()}", "kafka")
    with pytest.raises(ValidationError) as failed:
        Settings()
    message = str(failed.value)
    assert setting in message
    assert all(f"'{name}'" in message for name in allowed_names(setting))


@pytest.mark.parametrize(("threads", "expected"), [(1, 1), (2, 2), (0, None)])
def test_the_rollups_run_on_the_threads_the_settings_name(
    tmp_path: Path, threads: int, expected: int | None
) -> None:
    import duckdb

    ((default,),) = duckdb.connect().execute("SELECT current_setting('threads')").fetchall()
    rollups = bootstrap.open_rollups(
        Settings(data_dir=tmp_path, analytics_threads=threads), SystemClock()
    )
    try:
        ((found,),) = rollups.query("SELECT current_setting('threads')")
        assert int(found) == (expected or int(default))  # 0: DuckDB's own, one per core
    finally:
        rollups.close()
