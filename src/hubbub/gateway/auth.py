"""Who is calling: an API key (`Authorization: Bearer hb_...` or `X-API-Key`), a
person's session (`Bearer hs_...`, from signing in), or the operator's token.

A key or session checked against the store is trusted for `ttl_s` seconds, so the store is not
asked on every request; a key revoked through this gateway stops at once, and on other
replicas within `ttl_s`. Tokens that fail are remembered as briefly, so a flood of bad
tokens does not reach the store either. The cache is bounded.

While the store cannot be asked (its server is down or restarting), a token checked
before is taken as it was last checked, however long ago, and a warning says so: the
features that do not need the store keep answering their callers (fail small). No key
is revoked meanwhile: revoking one needs the store too.
"""

from __future__ import annotations

import asyncio
import hmac
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

import structlog

from hubbub.gateway.ports import PLATFORM, Caller, TenantStore
from hubbub.gateway.sessions import PREFIX as SESSION_PREFIX
from hubbub.kernel.clock import Clock

MAX_CACHED: Final = 100_000
OPERATOR: Final = Caller(tenant=PLATFORM, key="operator", role="owner")
log = structlog.get_logger()


def token_of(authorization: str | None, api_key: str | None) -> str | None:
    """The token a request carries, from either header."""
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return api_key.strip() if api_key else None


class Authenticator:
    def __init__(
        self,
        store: TenantStore,
        operator_token: str | None = None,
        ttl_s: float = 5.0,
        *,
        clock: Clock,
        sessions: Callable[[str], Caller | None] | None = None,
    ) -> None:
        self._store = store
        self._sessions = sessions
        self._operator = operator_token.encode() if operator_token else None
        self._ttl_s = ttl_s
        self._clock = clock
        self._cache: OrderedDict[str, tuple[float, Caller | None]] = OrderedDict()

    async def caller(self, token: str) -> Caller | None:
        """Who `token` speaks for, or None when it is not a valid key (or the operator's)."""
        if self._operator is not None and hmac.compare_digest(token.encode(), self._operator):
            return OPERATOR
        now = self._clock.monotonic_s()
        cached = self._cache.get(token)
        if cached is not None and cached[0] > now:
            return cached[1]
        check: Callable[[str], Caller | None] = self._store.authenticate
        if token.startswith(SESSION_PREFIX) and self._sessions is not None:
            check = self._sessions
        try:
            found = await asyncio.to_thread(check, token)
        except Exception as error:
            if cached is None:
                raise
            log.warning("key store unreachable: the key is taken as last checked", error=str(error))
            return cached[1]
        self._remember(token, (now + self._ttl_s, found))
        return found

    def forget(self, key_id: str) -> None:
        """Drop every cached token of the key `key_id` (it was just revoked), or of a
        person's sessions (`user:<id>`: signed out everywhere)."""
        for token in [t for t, (_, c) in self._cache.items() if c is not None and c.key == key_id]:
            del self._cache[token]

    def _remember(self, token: str, entry: tuple[float, Caller | None]) -> None:
        self._cache[token] = entry
        self._cache.move_to_end(token)
        while len(self._cache) > MAX_CACHED:
            self._cache.popitem(last=False)
