"""A full data disk, recognised whichever store ran into it, and answered as 507.

SQLite says "database or disk is full", DuckDB and plain files "No space left on
device" (ENOSPC), each wrapped in its own error type, and SQLAlchemy wraps them again.
Left alone, each reaches the client as a 500 with no reason. Every app registers
`answer_disk_full` (`register`): a request whose work could not be written is answered
507 Insufficient Storage with the reason and logged once as "disk full", and the client
may send it again once space returns. Nothing was kept of it: the stores refuse a
write whole (a transaction rolled back), so a retry neither loses nor doubles it.

A store that cannot be reached at all (its server down or restarting: the event log's
`LogUnavailable`) is answered the same way, as 503 with a `Retry-After`, rather than as
a 500: the app names those error types when it registers.
"""

from __future__ import annotations

import errno
import sqlite3
from typing import Final

import duckdb
import sqlalchemy as sa
import structlog
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

log = structlog.get_logger()

FULL_ERRNOS: Final = frozenset({errno.ENOSPC, errno.EDQUOT})
FULL_MESSAGES: Final = ("database or disk is full", "no space left on device")
REASON: Final = (
    "no space left on the data disk: nothing of this request was kept; retry once space is freed"
)
UNREACHABLE: Final = "the event log cannot be reached: nothing of this request was kept; retry"
STORE_ERRORS: Final = (
    OSError, sqlite3.Error, duckdb.Error, sa.exc.SQLAlchemyError, RuntimeError
)  # fmt: skip
"""The error types a full disk is reported as, by the libraries under our stores and by
the stores themselves (the event log's `LogUnavailable` is a RuntimeError)."""


def is_disk_full(error: BaseException | None) -> bool:
    """Whether `error`, or an error it was raised from or wraps, says the disk is full."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in FULL_ERRNOS:
            return True
        if any(message in str(error).lower() for message in FULL_MESSAGES):
            return True
        wrapped = getattr(error, "orig", None)  # SQLAlchemy's DBAPIError
        if not isinstance(wrapped, BaseException):
            wrapped = error.__cause__ or error.__context__
        error = wrapped
    return False


async def answer_disk_full(request: Request, error: Exception) -> Response:
    """507 with the reason for a request that hit a full disk; any other error goes on
    to the server's own handling (a 500 and its traceback in the log)."""
    if not is_disk_full(error):
        raise error
    log.error("disk full", path=request.url.path, error=str(error)[:300])
    return JSONResponse({"detail": REASON}, status_code=507, headers={"Retry-After": "60"})


async def answer_unavailable(request: Request, error: Exception) -> Response:
    """503 for a request whose store could not be reached; 507 when the reason is a
    full disk. The error itself is logged, not answered: it may name a server."""
    if is_disk_full(error):
        return await answer_disk_full(request, error)
    log.warning("store unavailable", path=request.url.path, error=str(error)[:300])
    return JSONResponse({"detail": UNREACHABLE}, status_code=503, headers={"Retry-After": "5"})


def register(app: FastAPI, unavailable: tuple[type[Exception], ...] = ()) -> None:
    """Answer a full disk as 507 wherever `app` meets one, and the `unavailable` errors
    (a store's server that cannot be reached) as 503."""
    for kind in STORE_ERRORS:
        app.add_exception_handler(kind, answer_disk_full)
    for unreachable in unavailable:
        app.add_exception_handler(unreachable, answer_unavailable)
