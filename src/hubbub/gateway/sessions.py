"""People's credentials: passwords (argon2id) and the session tokens a sign-in answers.

- A password is kept only as its argon2id hash (`argon2-cffi`, the library's default
  parameters, which follow RFC 9106's second recommendation); a hash made with older
  parameters is replaced at the next sign-in (`needs_rehash`).
- A session token reads `hs_<user id>.<issued, µs>.<signature>`: an HMAC-SHA256 of the
  rest, keyed with a key derived from the deployment's internal secret, so any gateway
  replica can check it without a lookup of the token itself. What it grants is read from
  the user as stored (tenant, role), so a role change holds at once; signing out
  everywhere moves the user's `sessions_after`, and every token issued before is refused.
- A token lives `ttl_s` at most; a person signs in again after that.
- The operator signs in to the web app with the operator's token and gets a session of
  its own (`OPERATOR_USER`), signed with a key derived from the internal secret and that
  token together: changing `HUBBUB_ADMIN_TOKEN` voids every operator session at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

PREFIX = "hs_"
OPERATOR_USER = "0" * 16
"""The user id of the operator's sessions: no person's (theirs are random)."""
_FORMAT = re.compile(r"^hs_([0-9a-f]{16})\.([0-9]{1,20})\.([A-Za-z0-9_-]{43})$")
_hasher = PasswordHasher()
MIN_PASSWORD = 10
MAX_PASSWORD = 1024


class WeakPassword(ValueError):
    """A password too short or too long; the message says which."""


def check_password(password: str) -> str:
    """`password`, when it is long enough to keep; else `WeakPassword`."""
    if len(password) < MIN_PASSWORD:
        raise WeakPassword(f"a password needs {MIN_PASSWORD} characters or more")
    if len(password) > MAX_PASSWORD:
        raise WeakPassword(f"a password has {MAX_PASSWORD} characters at most")
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(check_password(password))


def verify_password(stored: str | None, password: str) -> bool:
    """Whether `password` is the one hashed in `stored` (False for no hash at all)."""
    if stored is None or len(password) > MAX_PASSWORD:
        return False
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)


@dataclass(frozen=True)
class SessionClaim:
    """What a well-signed token says: whose it is and when it was issued."""

    user: str
    issued_us: int


class SessionSigner:
    """Makes and checks session tokens with a key derived from the internal secret."""

    def __init__(self, secret: bytes, ttl_s: float) -> None:
        self._key = hmac.new(secret, b"hubbub session tokens", hashlib.sha256).digest()
        self.ttl_s = ttl_s

    def _signature(self, payload: str) -> str:
        digest = hmac.new(self._key, payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def issue(self, user: str, now_us: int) -> str:
        payload = f"{user}.{now_us}"
        return f"{PREFIX}{payload}.{self._signature(payload)}"

    def check(self, token: str, now_us: int) -> SessionClaim | None:
        """The claim of a token this deployment signed and that has not expired; None
        for anything else (malformed, forged, expired), never saying which."""
        match = _FORMAT.match(token)
        if match is None:
            return None
        user, issued = match[1], int(match[2])
        expected = self._signature(f"{user}.{issued}")
        if not hmac.compare_digest(expected, match[3]):
            return None
        if not 0 <= now_us - issued <= self.ttl_s * 1_000_000:
            return None
        return SessionClaim(user, issued)
