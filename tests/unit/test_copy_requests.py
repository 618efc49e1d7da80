"""A backup asks the process that owns a file for a copy through the data directory."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from hubbub.kernel.copy_requests import REQUESTS, CopyRefused, request_copy, serve_pending


def _owner(data: Path, copy: object, stop: threading.Event) -> threading.Thread:
    def serve() -> None:
        while not stop.is_set():
            serve_pending(data / REQUESTS, "analytics", copy)  # type: ignore[arg-type]
            time.sleep(0.02)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_the_owner_makes_the_copy(tmp_path: Path) -> None:
    stop = threading.Event()
    thread = _owner(tmp_path, lambda target: target.write_text("rollups"), stop)
    try:
        assert request_copy(tmp_path, "analytics", tmp_path / "copy") is True
    finally:
        stop.set()
        thread.join()
    assert (tmp_path / "copy").read_text() == "rollups"
    assert list((tmp_path / REQUESTS).iterdir()) == []  # nothing left behind


def test_with_no_owner_the_request_is_withdrawn(tmp_path: Path) -> None:
    started = time.monotonic()
    assert request_copy(tmp_path, "analytics", tmp_path / "copy", claim_s=0.2) is False
    assert time.monotonic() - started < 2
    assert list((tmp_path / REQUESTS).iterdir()) == []


def test_the_owners_failure_is_told_to_the_one_who_asked(tmp_path: Path) -> None:
    def full(target: Path) -> None:
        raise OSError(28, "No space left on device")

    stop = threading.Event()
    thread = _owner(tmp_path, full, stop)
    try:
        with pytest.raises(CopyRefused, match="No space left on device"):
            request_copy(tmp_path, "analytics", tmp_path / "copy")
    finally:
        stop.set()
        thread.join()


def test_another_owners_requests_are_not_taken(tmp_path: Path) -> None:
    (tmp_path / REQUESTS).mkdir()
    (tmp_path / REQUESTS / "mentions-1.json").write_text('{"target": "/x"}')
    assert serve_pending(tmp_path / REQUESTS, "analytics", lambda target: None) == 0
    assert (tmp_path / REQUESTS / "mentions-1.json").exists()
