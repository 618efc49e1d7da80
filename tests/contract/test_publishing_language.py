"""One contract for the language a channel's best times fall back on, read from where
publishing keeps its jobs and posts: SQLite (embedded) and PostgreSQL (a database made
for each test on the real server). The language most of the channel's latest posts were
written in, whatever the tenant's other channels hold."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from hubbub.publishing.best_times import channel_language
from hubbub.publishing.ports import Channel, Limits, Post
from hubbub.publishing.sql import SqlJobStore
from tests.conftest import postgres_database
from tests.contract.test_tenant_stores import sqlalchemy_url

S = 1_000_000
T0 = 1_800_000_000 * S
HOUR = 3600 * S


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlJobStore]:
    if request.param == "sqlite":
        built = SqlJobStore(f"sqlite:///{tmp_path / 'relational.db'}")
        yield built
        built.close()
        return
    with postgres_database("hubbub_language") as dsn:
        built = SqlJobStore(sqlalchemy_url(dsn))
        yield built
        built.close()


def channel(tenant: str, name: str) -> Channel:
    return Channel(
        id=f"{tenant}-{name}", tenant=tenant, network="mastodon", account=f"{name}@example.social",
        service="https://example.social", time_zone="Europe/Paris", limits=Limits(500),
        sealed_credentials="hb1:sealed",
    )  # fmt: skip


def write(store: SqlJobStore, where: Channel, n: int, language: str | None, due_us: int) -> Post:
    """A post in `language` on `where`, due at `due_us`."""
    post = Post(id=f"{where.id}-{n}", tenant=where.tenant, author="ed", text=f"post {n}",
                language=language)  # fmt: skip
    store.schedule(post, {where.id: due_us}, T0)
    return post


def test_a_sparse_channel_in_a_busy_tenant_keeps_its_own_language(store: SqlJobStore) -> None:
    news = store.add_channel(channel("acme", "news"))
    busy = store.add_channel(channel("acme", "busy"))
    write(store, news, 1, "pt", T0)
    write(store, news, 2, "pt", T0 + HOUR)
    write(store, news, 3, "es", T0 + 2 * HOUR)
    for n in range(600):  # a busy tenant with 600 jobs on another channel, all due later
        write(store, busy, n, "de", T0 + (10 + n) * HOUR)
    assert store.channel_language("acme", news.id) == "pt"
    assert channel_language(store, news, "en") == "pt"
    assert channel_language(store, busy, "en") == "de"


def test_ties_go_to_the_latest_post_and_only_the_latest_posts_count(
    store: SqlJobStore,
) -> None:
    news = store.add_channel(channel("acme", "news"))
    write(store, news, 1, "fr", T0)
    write(store, news, 2, "it", T0 + 2 * HOUR)
    write(store, news, 3, "fr", T0 + 3 * HOUR)
    write(store, news, 4, "it", T0 + 4 * HOUR)
    assert channel_language(store, news, "en") == "it"  # two each: it's post is the latest
    written = write(store, news, 5, "fr", T0 + HOUR)  # an earlier slot, a third in French
    assert channel_language(store, news, "en") == "fr"
    edited = replace(written, version=2, language="it")  # now Italian: a new version's job
    [first] = store.post_jobs("acme", written.id)
    store.cancel("acme", first.id, T0)  # the first version's, as an edit cancels it
    store.schedule(edited, {news.id: T0 + HOUR}, T0)
    assert channel_language(store, news, "en") == "it"  # it 3, fr 2: version 1 is no post
    for n in range(6, 56):  # 50 later posts, in Dutch: the earlier ones no longer count
        write(store, news, n, "nl" if n % 2 else None, T0 + n * HOUR)
    assert store.channel_language("acme", news.id, recent=50) == "nl"
    assert store.channel_language("acme", news.id, recent=60) == "nl"


def test_none_when_no_post_names_a_language_and_another_tenants_never_count(
    store: SqlJobStore,
) -> None:
    news = store.add_channel(channel("acme", "news"))
    theirs = store.add_channel(channel("rival", "news"))
    assert store.channel_language("acme", news.id) is None
    write(store, news, 1, None, T0)
    write(store, news, 2, "", T0 + HOUR)
    write(store, theirs, 1, "ja", T0 + 2 * HOUR)
    assert store.channel_language("acme", news.id) is None
    assert channel_language(store, news, "en") == "en"
    assert store.channel_language("acme", theirs.id) is None  # asked as the wrong tenant
    assert store.channel_language("rival", theirs.id) == "ja"
