"""`hubbub routes`: an operator moves a route between the legacy app and the new service,
and a running gateway follows."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from hubbub.eventlog.sqlite import SqliteEventLog
from hubbub.gateway.routing import RouteTable
from tests.support.cli import hubbub


def test_routes_are_set_listed_and_removed(tmp_path: Path) -> None:
    code, said = hubbub(tmp_path, "routes", "set", "/v1/reports", "percent", "--percent", "25")
    assert code == 0, said
    assert "25 % of tenants on new" in said
    assert hubbub(tmp_path, "routes", "set", "/v1/old", "legacy", "--shadow")[0] == 0
    code, listed = hubbub(tmp_path, "routes", "list", "--json")
    rows = {r["prefix"]: r for r in json.loads(listed)}
    assert rows["/v1/reports"] == {
        "prefix": "/v1/reports", "service": "analytics", "target": "percent", "percent": 25.0,
        "shadow": False,
    }  # fmt: skip
    assert rows["/v1/old"]["service"] is None
    assert rows["/v1/mentions"]["target"] == "new"

    table = RouteTable(SqliteEventLog(tmp_path / "eventlog.db"))  # what a gateway reads
    asyncio.run(table.catch_up())
    assert [r.prefix for r in table.strangler()] == ["/v1/old", "/v1/reports"]

    assert hubbub(tmp_path, "routes", "remove", "/v1/reports")[0] == 0
    code, said = hubbub(tmp_path, "routes", "remove", "/v1/reports")
    assert code != 0
    assert "no strangler route" in said
    code, said = hubbub(tmp_path, "routes", "set", "reports", "new")
    assert code != 0
    assert "a route prefix is a path" in said
