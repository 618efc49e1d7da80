"""Who may do what, as HTTP answers.

The checks themselves are the use cases' (`hubbub.gateway.service`); the gateway's own
routes go through these, which answer the use cases' errors over HTTP: refused 403, not
found 404, conflict 409. Its proxy path, plain ASGI, asks `refusal` for the message alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import HTTPException

from hubbub.gateway import service
from hubbub.gateway.ports import Caller, Conflict, NotFound, Role
from hubbub.gateway.service import Refused, refusal

__all__ = ["answering", "at_least", "operator", "refusal"]


@contextmanager
def answering() -> Iterator[None]:
    """The use cases' errors, raised inside, as HTTP errors."""
    try:
        yield
    except Refused as error:
        raise HTTPException(403, str(error)) from error
    except NotFound as error:
        raise HTTPException(404, str(error)) from error
    except Conflict as error:
        raise HTTPException(409, str(error)) from error


def at_least(who: Caller, role: Role) -> Caller:
    """`who`, when its role is `role` or above; else a 403."""
    with answering():
        return service.at_least(who, role)


def operator(who: Caller) -> Caller:
    """`who`, when it is the operator; else a 403."""
    with answering():
        return service.operator(who)
