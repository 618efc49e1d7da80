"""`hubbub tenants` and `hubbub keys`, as an operator uses them."""

from __future__ import annotations

import json
from pathlib import Path

from hubbub.bootstrap import open_tenant_store
from hubbub.kernel.clock import SystemClock
from hubbub.settings import Settings
from tests.support.cli import hubbub


def test_a_tenant_gets_a_key_shown_once_then_revoked(tmp_path: Path) -> None:
    code, tenant = hubbub(tmp_path, "tenants", "create", "acme")
    assert code == 0
    tenant = tenant.strip()
    code, again = hubbub(tmp_path, "tenants", "create", "acme")
    assert code != 0
    assert "exists already" in again
    code, listed = hubbub(tmp_path, "tenants", "list", "--json")
    assert [t["name"] for t in json.loads(listed)] == ["acme"]

    code, made = hubbub(tmp_path, "keys", "create", "--tenant", tenant, "--role", "viewer")
    assert code == 0
    token = made.strip().splitlines()[-1]
    store = open_tenant_store(Settings(data_dir=tmp_path), SystemClock())
    try:
        caller = store.authenticate(token)
        assert caller is not None
        assert (caller.tenant, caller.role) == (tenant, "viewer")
        key = caller.key
        code, keys = hubbub(tmp_path, "keys", "list", "--tenant", tenant, "--json")
        assert token not in keys
        assert [k["id"] for k in json.loads(keys)] == [key]

        code, revoked = hubbub(tmp_path, "keys", "revoke", key, "--tenant", tenant)
        assert code == 0
        assert f"key {key} revoked" in revoked
        assert store.authenticate(token) is None
        code, other = hubbub(tmp_path, "keys", "revoke", key, "--tenant", "someone-else")
        assert code != 0
        assert "no key" in other
    finally:
        store.close()
