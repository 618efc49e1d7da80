"""Bluesky's own PDS for the tests (`hubbub.sandbox.bluesky`): a test that needs it is
skipped, saying to run `make pds`, when it is not installed; with
HUBBUB_REQUIRE_SERVICES=1 (CI) it fails instead."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from hubbub.sandbox import bluesky
from hubbub.sandbox.bluesky import (
    Account,
    LocalPds,
    PdsMissing,
    PdsStartError,
    XrpcError,
    bearer,
    missing_parts,
    xrpc_result,
)
from tests.conftest import service_missing

__all__ = [
    "Account",
    "LocalPds",
    "PdsStartError",
    "XrpcError",
    "bearer",
    "local_pds",
    "missing_parts",
    "require_local_pds",
    "xrpc_result",
]


def require_local_pds() -> None:
    """Skip the test when the PDS is not installed; fail it when CI demands services."""
    try:
        bluesky.require_local_pds()
    except PdsMissing as missing:
        service_missing(str(missing))


@contextlib.asynccontextmanager
async def local_pds(**options: float) -> AsyncIterator[LocalPds]:
    require_local_pds()
    async with bluesky.local_pds(**options) as running:
        yield running
