"""Secrets at rest: sealed with the deployment's key, opened only with it."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from hubbub.kernel.sealing import PREFIX, SealError, SecretBox, key_file


def test_a_sealed_secret_opens_with_its_key_only() -> None:
    box = SecretBox(Fernet.generate_key())
    sealed = box.seal("hunter2")
    assert sealed.startswith(PREFIX)
    assert "hunter2" not in sealed
    assert box.seal("hunter2") != sealed  # a fresh nonce each time
    assert box.open(sealed) == "hunter2"
    with pytest.raises(SealError, match="same HUBBUB_SECRET_KEY"):
        SecretBox(Fernet.generate_key()).open(sealed)
    with pytest.raises(SealError):
        box.open(sealed[:-6] + "AAAAAA")  # tampered with


def test_a_secret_written_before_sealing_reads_as_it_was() -> None:
    assert SecretBox(Fernet.generate_key()).open("plain-old-secret") == "plain-old-secret"


def test_a_bad_key_says_how_to_make_one() -> None:
    with pytest.raises(SealError, match=r"Fernet\.generate_key"):
        SecretBox(b"not a key")


def test_the_key_file_is_made_once_and_for_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "data" / "secret.key"
    key = key_file(path)
    assert key_file(path) == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SecretBox(key).open(SecretBox(key).seal("x")) == "x"
