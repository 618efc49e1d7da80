"""Shared test helpers: real services on 127.0.0.1, skipped (or failed in CI) when absent."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
NATS_URL = os.environ.get("HUBBUB_TEST_NATS_URL", "nats://127.0.0.1:4222")


def require_service(name: str, host: str, port: int) -> None:
    """Skip the test when a server is not listening; fail instead when CI demands services."""
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError as error:
        reason = f"{name} is not reachable on {host}:{port} ({error})"
        if os.environ.get("HUBBUB_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{reason}, and HUBBUB_REQUIRE_SERVICES=1")
        pytest.skip(reason)


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def jetstream_lines() -> list[bytes]:
    return (FIXTURES / "jetstream-sample.jsonl").read_bytes().splitlines()


@pytest.fixture
def mastodon_status() -> bytes:
    return (FIXTURES / "mastodon-status-example.json").read_bytes()
