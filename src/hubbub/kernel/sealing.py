"""Secrets at rest: webhook secrets (and, later, connector tokens) are sealed before
they are written anywhere, the event log included, and opened only where they are used.

Sealing is Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`): a sealed value
reads `sealed:v1:<token>`, and a token that was tampered with, or sealed under another
key, fails to open with `SealError`. The key is `HUBBUB_SECRET_KEY` (every process of a
deployment needs the same one), or else a key file made in the data directory on first
use, readable by its owner only, so that one machine works with no configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from cryptography.fernet import Fernet, InvalidToken

from hubbub.kernel.keyfile import kept_secret

PREFIX: Final = "sealed:v1:"


class SealError(ValueError):
    """A sealed value that cannot be opened with this key; the message says what to do."""


class SecretBox:
    def __init__(self, key: bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except ValueError as error:
            raise SealError(
                "HUBBUB_SECRET_KEY is not a key: make one with `python -c 'from"
                " cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`"
            ) from error

    def seal(self, secret: str) -> str:
        return PREFIX + self._fernet.encrypt(secret.encode()).decode()

    def open(self, value: str) -> str:
        """The secret a sealed value holds. A value without the prefix was written before
        secrets were sealed and is returned as it is."""
        if not value.startswith(PREFIX):
            return value
        try:
            return self._fernet.decrypt(value.removeprefix(PREFIX).encode()).decode()
        except InvalidToken as error:
            raise SealError(
                "a sealed secret does not open with this key: every process needs the same"
                " HUBBUB_SECRET_KEY (or the same data directory's secret.key)"
            ) from error


def key_file(path: Path) -> bytes:
    """The key in `path`, made (owner-only) if there is none yet."""
    return kept_secret(path, Fernet.generate_key, least=44)
