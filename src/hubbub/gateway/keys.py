"""API keys: made once, shown once, kept only as a hash.

A key reads `hb_<key id>_<secret>`: the id finds the stored key, the secret (32 random
bytes) proves it. Only the SHA-256 of the secret is stored. A fast hash is right here,
unlike for passwords: the secret has 256 bits of entropy, so there is nothing to guess,
and the comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

_FORMAT = re.compile(r"^hb_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class NewKey:
    """A key just made: `token` is what the caller is shown, once."""

    key_id: str
    token: str
    secret_hash: str


def new_key() -> NewKey:
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    return NewKey(key_id, f"hb_{key_id}_{secret}", hash_secret(secret))


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse(token: str) -> tuple[str, str] | None:
    """`(key id, secret)` of a well-formed token, else None."""
    match = _FORMAT.match(token)
    return (match[1], match[2]) if match else None


def matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
