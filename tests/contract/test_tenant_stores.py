"""One contract for the relational store: SQLite (embedded) and PostgreSQL (scale-out).

The PostgreSQL store runs against the real server, in a database made for each test.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from psycopg.conninfo import conninfo_to_dict

from hubbub.gateway.ports import Conflict, NotFound, TenantStore
from hubbub.gateway.sql import SqlTenantStore
from hubbub.kernel.clock import SystemClock
from hubbub.kernel.sealing import SecretBox
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
        built: TenantStore = SqlTenantStore.sqlite(tmp_path / "relational.db", SystemClock())
        yield built
        built.close()
        return
    with postgres_database("hubbub_tenants") as dsn:
        built = SqlTenantStore(sqlalchemy_url(dsn), SystemClock())
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


def test_every_user_of_every_tenant_is_listed_by_tenant_then_email(store: TenantStore) -> None:
    assert store.all_users() == []
    acme, globex = store.create_tenant("acme"), store.create_tenant("globex")
    made = [
        store.add_user(acme.id, "zoe@example.com", "owner"),
        store.add_user(globex.id, "ada@example.com", "viewer"),
        store.add_user(acme.id, "bob@example.com", "editor"),
    ]
    store.set_profile(acme.id, made[2].id, "Europe/Paris", "fr")
    expected = sorted(
        [*made[:2], store.user(acme.id, made[2].id)], key=lambda u: (u.tenant, u.email)
    )
    assert store.all_users() == expected


def test_a_role_changes_but_never_leaves_a_tenant_without_an_owner(store: TenantStore) -> None:
    acme, globex = store.create_tenant("acme"), store.create_tenant("globex")
    ada = store.add_user(acme.id, "ada@example.com", "owner")
    bob = store.add_user(acme.id, "bob@example.com", "viewer")
    with pytest.raises(Conflict, match="last owner"):
        store.set_role(acme.id, ada.id, "admin")
    assert store.set_role(acme.id, bob.id, "owner").role == "owner"
    assert store.set_role(acme.id, ada.id, "editor").role == "editor"  # bob owns it now
    with pytest.raises(NotFound):
        store.set_role(globex.id, bob.id, "viewer")  # not a user of that tenant
    with pytest.raises(ValueError, match="unknown role"):
        store.set_role(acme.id, bob.id, "root")  # type: ignore[arg-type]
    assert [(u.email, u.role) for u in store.users(acme.id)] == [
        ("ada@example.com", "editor"), ("bob@example.com", "owner"),
    ]  # fmt: skip


def test_a_removed_user_is_gone_with_its_sessions_but_never_the_last_owner(
    store: TenantStore,
) -> None:
    acme, globex = store.create_tenant("acme"), store.create_tenant("globex")
    ada = store.add_user(acme.id, "ada@example.com", "owner")
    bob = store.add_user(acme.id, "bob@example.com", "owner")
    ed = store.add_user(acme.id, "ed@example.com", "editor")
    store.set_password(acme.id, ed.id, "hashed")
    later = datetime.now(UTC) + timedelta(days=7)
    invited = store.create_invite(acme.id, "ed@example.com", "viewer", "a" * 64, later)
    with pytest.raises(NotFound):
        store.remove_user(globex.id, ed.id)  # not a user of that tenant
    assert store.user(acme.id, ed.id) == ed

    assert store.remove_user(acme.id, ed.id) == ed
    assert store.credentials(ed.id) is None  # what a session is checked against
    assert store.credentials_by_email("ed@example.com") == []
    with pytest.raises(NotFound):
        store.user(acme.id, ed.id)
    with pytest.raises(NotFound):
        store.remove_user(acme.id, ed.id)
    assert store.invites(acme.id) == [invited]  # an invitation to their email stays
    back = store.accept_invite("a" * 64, "hash-of-a-password", datetime.now(UTC))
    assert (back.email, back.role) == ("ed@example.com", "viewer")
    assert back.id != ed.id

    assert store.remove_user(acme.id, ada.id) == ada  # bob still owns it
    with pytest.raises(Conflict, match="last owner"):
        store.remove_user(acme.id, bob.id)
    assert [(u.email, u.role) for u in store.users(acme.id)] == [
        ("bob@example.com", "owner"), ("ed@example.com", "viewer"),
    ]  # fmt: skip


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


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(Fernet.generate_key())


def test_a_connector_token_is_kept_sealed_and_replaced(store: TenantStore, box: SecretBox) -> None:
    first, second = box.seal("token-one"), box.seal("token-two")
    assert store.connector_token("acme", "mastodon", "mastodon.social") is None
    store.put_connector_token("acme", "mastodon", "mastodon.social", first)
    assert store.connector_token("acme", "mastodon", "mastodon.social") == first
    [made] = store.connector_tokens("acme")
    store.put_connector_token("acme", "mastodon", "mastodon.social", second)
    assert store.connector_token("acme", "mastodon", "mastodon.social") == second
    [replaced] = store.connector_tokens("acme")
    assert (replaced.tenant, replaced.connector, replaced.account) == (
        "acme", "mastodon", "mastodon.social"
    )  # fmt: skip
    assert replaced.created_at == made.created_at
    assert replaced.updated_at >= made.updated_at >= made.created_at
    assert replaced.created_at.tzinfo is not None


def test_connector_tokens_are_listed_without_the_tokens(store: TenantStore, box: SecretBox) -> None:
    sealed = {account: box.seal(f"token for {account}") for account in ("b.example", "a.example")}
    for account, value in sealed.items():
        store.put_connector_token("acme", "mastodon", account, value)
    listed = store.connector_tokens("acme")
    assert [(t.connector, t.account) for t in listed] == [
        ("mastodon", "a.example"), ("mastodon", "b.example")
    ]  # fmt: skip
    assert all(value not in repr(listed) for value in sealed.values())


def test_plaintext_is_never_stored(store: TenantStore) -> None:
    for plaintext in ("s3cret", "", "sealed:v1:", "SEALED:V1:abc", " sealed:v1:abc"):
        with pytest.raises(ValueError, match="must be sealed"):
            store.put_connector_token("acme", "mastodon", "mastodon.social", plaintext)
    assert store.connector_tokens("acme") == []


def test_a_removed_connector_token_is_gone(store: TenantStore, box: SecretBox) -> None:
    store.put_connector_token("acme", "mastodon", "mastodon.social", box.seal("t"))
    store.put_connector_token("acme", "mastodon", "fosstodon.org", box.seal("u"))
    store.delete_connector_token("acme", "mastodon", "mastodon.social")
    assert store.connector_token("acme", "mastodon", "mastodon.social") is None
    assert [t.account for t in store.connector_tokens("acme")] == ["fosstodon.org"]
    with pytest.raises(NotFound, match="no mastodon token"):
        store.delete_connector_token("acme", "mastodon", "mastodon.social")


def test_another_tenants_connector_token_is_not_found(store: TenantStore, box: SecretBox) -> None:
    sealed = box.seal("acme's token")
    store.put_connector_token("acme", "mastodon", "mastodon.social", sealed)
    assert store.connector_token("globex", "mastodon", "mastodon.social") is None
    assert store.connector_tokens("globex") == []
    with pytest.raises(NotFound):
        store.delete_connector_token("globex", "mastodon", "mastodon.social")
    store.put_connector_token("globex", "mastodon", "mastodon.social", box.seal("globex's"))
    assert store.connector_token("acme", "mastodon", "mastodon.social") == sealed


def test_reopening_migrates_nothing_twice(tmp_path: Path) -> None:
    first = SqlTenantStore.sqlite(tmp_path / "relational.db", SystemClock())
    acme = first.create_tenant("acme")
    first.close()
    again = SqlTenantStore.sqlite(tmp_path / "relational.db", SystemClock())
    try:
        assert again.tenants() == [acme]
    finally:
        again.close()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'relational.db'}"
        return
    with postgres_database("hubbub_tenants") as dsn:
        yield sqlalchemy_url(dsn)


def test_the_migrations_make_the_schema_the_code_expects(database_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from hubbub.gateway.sql import metadata

    SqlTenantStore(database_url, SystemClock()).close()
    engine = sa.create_engine(database_url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    engine.dispose()
    assert differences == []


def test_an_invitation_is_used_once_and_never_after_it_expires(store: TenantStore) -> None:
    acme, globex = store.create_tenant("acme"), store.create_tenant("globex")
    now = datetime.now(UTC)
    later = now + timedelta(days=7)
    made = store.create_invite(acme.id, "Ed@Acme.example", "editor", "a" * 64, later)
    assert (made.email, made.role, made.used_at) == ("ed@acme.example", "editor", None)
    store.create_invite(acme.id, "old@acme.example", "viewer", "b" * 64, now - timedelta(1))
    assert store.invite("a" * 64) == made
    assert store.invite("c" * 64) is None

    user = store.accept_invite("a" * 64, "hash-of-a-password", now)
    assert (user.tenant, user.email, user.role) == (acme.id, "ed@acme.example", "editor")
    with pytest.raises(NotFound):
        store.accept_invite("a" * 64, "another", now)  # once
    with pytest.raises(NotFound):
        store.accept_invite("b" * 64, "another", now)  # expired
    (credentials,) = store.credentials_by_email("ED@acme.example")
    assert (credentials.user, credentials.password_hash) == (user, "hash-of-a-password")
    assert [i.email for i in store.invites(acme.id)] == ["ed@acme.example", "old@acme.example"]
    assert store.invites(globex.id) == []


def test_a_users_sessions_end_and_its_profile_is_its_own(store: TenantStore) -> None:
    acme, globex = store.create_tenant("acme"), store.create_tenant("globex")
    user = store.add_user(acme.id, "ed@acme.example", "viewer")
    found = store.credentials(user.id)
    assert found is not None
    assert (found.password_hash, found.sessions_after) == (None, 0)
    store.set_password(acme.id, user.id, "hashed")
    store.end_sessions(acme.id, user.id, 1_234)
    found = store.credentials(user.id)
    assert found is not None
    assert (found.password_hash, found.sessions_after) == ("hashed", 1_234)
    changed = store.set_profile(acme.id, user.id, "Europe/Paris", "fr_CH")
    assert (changed.time_zone, changed.locale) == ("Europe/Paris", "fr_CH")
    assert store.user(acme.id, user.id) == changed
    for other_tenants in (
        lambda: store.user(globex.id, user.id),
        lambda: store.set_password(globex.id, user.id, "mine now"),
        lambda: store.end_sessions(globex.id, user.id, 9),
    ):
        with pytest.raises(NotFound):
            other_tenants()
    assert store.credentials("0" * 16) is None
