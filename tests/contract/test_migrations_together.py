"""Replicas starting together on an empty PostgreSQL database (a first start, or a
release with a migration) each migrate it: they take turns, and every one of them
starts, rather than all but one failing on a duplicate key."""

from __future__ import annotations

import subprocess
import sys
import time

import sqlalchemy as sa

from tests.conftest import postgres_database
from tests.contract.test_tenant_stores import sqlalchemy_url

REPLICA = """
import sys, time
import sqlalchemy as sa
from hubbub.gateway import sql as gateway
from hubbub.kernel import relational
from hubbub.listening import sql as listening
from hubbub.notifications import sql as notifications
from hubbub.publishing import sql as publishing

url, start = sys.argv[1], float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))  # every replica at once
gateway.migrate(sa.create_engine(url))
for service in (publishing, notifications, listening):
    relational.open_engine(url, service.MIGRATIONS).dispose()
print("migrated")
"""


def test_replicas_starting_together_each_migrate_and_start() -> None:
    with postgres_database("hubbub_migrations") as dsn:
        url = sqlalchemy_url(dsn)
        start = time.time() + 3.0  # once every interpreter has imported
        command = [sys.executable, "-c", REPLICA, url, str(start)]
        replicas = [
            subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(4)
        ]
        outcomes = [replica.communicate(timeout=120) for replica in replicas]
        failed = [err for (out, err), r in zip(outcomes, replicas, strict=True) if r.returncode]
        assert not failed, failed[0]
        assert all(out.strip() == "migrated" for out, _ in outcomes)
        engine = sa.create_engine(url)
        with engine.connect() as db:
            tables = set(sa.inspect(db).get_table_names())
        engine.dispose()
        assert {"listening_searches", "listening_matches"} <= tables
