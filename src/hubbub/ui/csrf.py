"""Cross-site request forgery protection for every form of the web app.

A signed-in person's forms carry a token derived from their session (an HMAC of the
session cookie with the web app's key): another site can make the browser send the
cookie, but cannot read the page, so it cannot know the token. Before signing in (the
sign-in and invitation forms), the token is a random value that is both in a cookie
and in the form (double submit), compared in constant time. htmx requests send the
same token in the `X-CSRF-Token` header. The session cookie is also SameSite=Lax.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

FIELD = "csrf"
HEADER = "x-csrf-token"
COOKIE = "hubbub_csrf"


class CsrfKey:
    def __init__(self, secret: bytes) -> None:
        self._key = hmac.new(secret, b"hubbub web csrf", hashlib.sha256).digest()

    def for_session(self, session: str) -> str:
        digest = hmac.new(self._key, session.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def valid(self, session: str | None, sent: str | None, cookie: str | None) -> bool:
        """Whether `sent` (from the form or header) is the token the page was given."""
        if not sent:
            return False
        expected = self.for_session(session) if session else cookie
        return bool(expected) and hmac.compare_digest(sent.encode(), str(expected).encode())


def fresh() -> str:
    return secrets.token_urlsafe(32)
