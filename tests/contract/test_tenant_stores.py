"""One contract for the relational store: SQLite (embedded) and PostgreSQL (scale-out).

The PostgreSQL store runs against the real server, in a database made for each test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from psycopg.conninfo import conninfo_to_dict

from hubbub.gateway.ports import Conflict, NotFound, TenantStore
from hubbub.gateway.sql import SqlTenantStore
from tests.conftest import postgres_database


def sqlalchemy_url(conninfo: str) -> str:
    params = conninfo_to_dict(conninfo)
    return str(
        sa.URL.create(
            "postgresql+psycopg",
            username=params.get("user"),
            password=params.get("password"),
            host=params.get("host", "127.0.0.1"),
            port=int(params.get("port", 5432)),
            database=params.get("dbname"),
        ).render_as_string(hide_password=False)
    )


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TenantStore]:
    if request.param == "sqlite":
        built: TenantStore = SqlTenantStore.sqlite(tmp_path / "relational.db")
        yield built
        built.close()
        return
    with postgres_database("hubbub_tenants") as dsn:
        built = SqlTenantStore(sqlalchemy_url(dsn))
        yield built
        built.close()


def test_tenants_have_unique_names(store: TenantStore) -> None:
    acme = store.create_tenant("acme")
    store.create_tenant("globex")
    with pytest.raises(Conflict, match="acme"):
        store.create_tenant("acme")
    assert [t.name for t in store.tenants()] == ["acme", "globex"]
    assert store.tenants()[0] == acme


def test_users_have_one_role_and_one_email_per_tenant(store: TenantStore) -> None:
    acme, globex = store.create_tenant("acme"), store.create_tenant("globex")
    store.add_user(acme.id, "Ada@Example.com", "owner")
    store.add_user(globex.id, "ada@example.com", "viewer")  # another tenant: fine
    with pytest.raises(Conflict):
        store.add_user(acme.id, "ada@example.com", "editor")
    with pytest.raises(ValueError, match="unknown role"):
        store.add_user(acme.id, "bob@example.com", "root")  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        store.add_user("no-such-tenant", "bob@example.com", "viewer")
    assert [(u.email, u.role) for u in store.users(acme.id)] == [("ada@example.com", "owner")]


def test_a_key_is_shown_once_works_until_revoked_and_is_stored_hashed(
    store: TenantStore,
) -> None:
    acme = store.create_tenant("acme")
    key, token = store.create_key(acme.id, "ci", "editor")
    caller = store.authenticate(token)
    assert caller is not None
    assert (caller.tenant, caller.key, caller.role) == (acme.id, key.id, "editor")
    assert all(token not in repr(k) for k in store.keys(acme.id))
    assert store.revoke_key(acme.id, key.id).revoked_at is not None
    assert store.authenticate(token) is None
    assert store.keys(acme.id)[0].revoked_at is not None


def test_bad_tokens_are_refused_alike(store: TenantStore) -> None:
    acme = store.create_tenant("acme")
    _, token = store.create_key(acme.id, "ci", "viewer")
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for bad in ("", "hb_", "Bearer " + token, forged, token + "x", "hb_000000000000_" + "a" * 43):
        assert store.authenticate(bad) is None, bad


def test_another_tenants_key_is_not_found(store: TenantStore) -> None:
    acme, globex = store.create_tenant("acme"), store.create_tenant("globex")
    key, token = store.create_key(acme.id, "ci", "admin")
    with pytest.raises(NotFound):
        store.revoke_key(globex.id, key.id)
    assert store.keys(globex.id) == []
    assert store.authenticate(token) is not None  # still working


def test_reopening_migrates_nothing_twice(tmp_path: Path) -> None:
    first = SqlTenantStore.sqlite(tmp_path / "relational.db")
    acme = first.create_tenant("acme")
    first.close()
    again = SqlTenantStore.sqlite(tmp_path / "relational.db")
    try:
        assert again.tenants() == [acme]
    finally:
        again.close()


def test_the_migrations_make_the_schema_the_code_expects(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from hubbub.gateway.sql import metadata

    SqlTenantStore.sqlite(tmp_path / "relational.db").close()
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'relational.db'}")
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    engine.dispose()
    assert differences == []
