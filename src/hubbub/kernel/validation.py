"""Validation errors that an answer can always carry.

FastAPI answers a request that fails validation with a 422 holding each error's
`input`, the value as it was sent. JSON can escape a lone surrogate (`"\\ud800"`),
which Python decodes into a `str` that no UTF-8 encoder writes: pydantic rightly
refuses it, but the 422 naming it then fails to encode, and the caller gets a 500.
`printable_validation_errors`, the 422 handler of every app, replaces such characters
in the errors first.
"""

from __future__ import annotations

import re
from typing import Any, Final

from fastapi import Request, Response
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator

_SURROGATE: Final = re.compile("[\ud800-\udfff]")
REPLACEMENT: Final = "\ufffd"


def printable(value: Any) -> Any:
    """`value` with every surrogate in its strings (in dicts, lists and tuples too)
    replaced by U+FFFD, so it encodes as UTF-8; other values are returned as they are."""
    if isinstance(value, str):
        return _SURROGATE.sub(REPLACEMENT, value)
    if isinstance(value, dict):
        return {printable(k): printable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(printable(item) for item in value)
    return value


async def printable_validation_errors(request: Request, error: RequestValidationError) -> Response:
    """FastAPI's 422 for a request that failed validation, with its errors made
    printable first: register it on an app for `RequestValidationError`."""
    return await request_validation_exception_handler(
        request, RequestValidationError(printable(error.errors()), body=printable(error.body))
    )


_CONTROL: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def no_control_characters(value: str) -> str:
    """Refuse NUL and the other control characters but tab and newlines: in a name, an
    email or a target they are never meant, and they break what stores or shows them."""
    if _CONTROL.search(value):
        raise ValueError("control characters (such as NUL) are not allowed")
    return value


PlainText = AfterValidator(no_control_characters)
"""Annotate a `str` field with this to refuse control characters (a 422)."""
