"""Public paths: what anyone may ask without an account, the token in the path being the
credential (an external reviewer's signed link, a person's calendar feed).

A request whose path starts `/v1/public/` goes to the publishing service, which checks
the token itself. The gateway asks for no key or session there, and passes on none the
client sent (keys, the web app's session cookie): the request is signed for the tenant
`PUBLIC_TENANT` and the key `PUBLIC_KEY`, as a viewer (`PUBLIC_CALLER`), so the service
knows it speaks for nobody. Requests are limited per client address, so a link's token
cannot be guessed at speed, and counted under one route, `/v1/public` (a token never
becomes a metric label).

Only a path that is plainly public is forwarded (`refusal`): written `/v1/public/` then
segments that are each, once unescaped, letters, digits or `. _ ~ = -` (so `%3D` for the
`=` of a token is fine, `%2F` is not), none empty, `.` or `..`. So no other spelling of a
route (`/v1/public/../v1/posts`, `/v1/public/%2e%2e/v1/posts`, `/v1/public%2f..`) reaches
a service as a public request, whatever the service then makes of the path.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import unquote

from starlette.types import Scope

from hubbub.gateway.ports import Caller
from hubbub.kernel.ratelimit import Quota
from hubbub.kernel.signing import PUBLIC_KEY, PUBLIC_TENANT

PUBLIC_PREFIX: Final = "/v1/public/"
PUBLIC_ROUTE: Final = "/v1/public"
"""The one route every public request is counted under (metrics label, usage)."""
PUBLIC_UPSTREAM: Final = "publishing"
PUBLIC_CALLER: Final = Caller(PUBLIC_TENANT, PUBLIC_KEY, "viewer")
DEFAULT_QUOTA: Final = Quota(5.0, 60, "client address")
"""Public requests per client address: 60 at once, then 5 a second."""
_SEGMENT: Final = re.compile(r"[A-Za-z0-9._~=-]+")
"""A segment of a public path, unescaped: unreserved characters (and `=`, base64's
padding)."""
PLAIN: Final = (
    "a public path is /v1/public/ then segments of letters, digits and . _ ~ = - (escaped or"
    " not), none empty, . or .."
)


def is_public(scope: Scope) -> bool:
    """Whether the request asks for a public path (checked by `refusal` before it goes)."""
    path: str = scope["path"]
    return path.startswith(PUBLIC_PREFIX)


def refusal(scope: Scope) -> str | None:
    """Why a public path's request is not forwarded (None: it is plainly public). Each
    segment is checked as the client wrote it and unescaped, so an escaped `/`, `.` or
    `%` never makes a segment the service reads otherwise."""
    raw_path = scope.get("raw_path")
    written = raw_path.decode("latin-1") if raw_path else scope["path"]
    if not written.startswith(PUBLIC_PREFIX):
        return PLAIN
    for segment in written.removeprefix(PUBLIC_PREFIX).split("/"):
        plain = unquote(segment)
        if plain in (".", "..") or not _SEGMENT.fullmatch(plain):
            return PLAIN
    return None


def client_address(scope: Scope) -> str:
    """The address public requests are limited by (the connection's peer)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"
