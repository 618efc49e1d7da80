"""A backup asks the process that owns a file for a copy through the data directory."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hubbub.kernel.copy_requests import REQUESTS, CopyRefused, request_copy, serve_pending


@contextmanager
def owner(data: Path, copy: Callable[[Path], object]) -> Iterator[None]:
    """An `analytics` owner serving the requests in `data` until the block ends."""
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            serve_pending(data / REQUESTS, "analytics", copy)
            time.sleep(0.02)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _dead_pid() -> int:
    """A pid that no longer runs."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    return dead.pid


def _claim_first(requests: Path) -> Path:
    """Claim the first request made, as an owner does (its claim, without a pid yet)."""
    while not (found := list(requests.glob("analytics-*.json"))):
        time.sleep(0.01)
    taken = found[0].with_suffix(".taken")
    found[0].rename(taken)
    return taken


def test_the_owner_makes_the_copy(tmp_path: Path) -> None:
    with owner(tmp_path, lambda target: target.write_text("rollups")):
        assert request_copy(tmp_path, "analytics", tmp_path / "copy") is True
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

    with owner(tmp_path, full), pytest.raises(CopyRefused, match="No space left on device"):
        request_copy(tmp_path, "analytics", tmp_path / "copy")


def test_another_owners_requests_are_not_taken(tmp_path: Path) -> None:
    (tmp_path / REQUESTS).mkdir()
    (tmp_path / REQUESTS / "mentions-1.json").write_text('{"target": "/x"}')
    assert serve_pending(tmp_path / REQUESTS, "analytics", lambda target: None) == 0
    assert (tmp_path / REQUESTS / "mentions-1.json").exists()


def test_an_owner_that_dies_during_the_copy_is_noticed(tmp_path: Path) -> None:
    dead = _dead_pid()

    def claim_and_die() -> None:
        taken = _claim_first(tmp_path / REQUESTS)
        taken.write_text(json.dumps({"target": "/x", "pid": str(dead)}))

    thread = threading.Thread(target=claim_and_die)
    thread.start()
    started = time.monotonic()
    with pytest.raises(CopyRefused, match="stopped while it made the copy"):
        request_copy(tmp_path, "analytics", tmp_path / "copy", finish_s=60)
    thread.join()
    assert time.monotonic() - started < 30


def test_a_request_left_by_one_who_stopped_waiting_is_dropped(tmp_path: Path) -> None:
    requests = tmp_path / REQUESTS
    requests.mkdir()
    old = requests / "analytics-1.json"
    old.write_text(json.dumps({"target": str(tmp_path / "copy")}))
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    made: list[Path] = []
    assert serve_pending(requests, "analytics", made.append) == 0
    assert made == []
    assert not old.exists()


def test_a_copy_never_overwrites_a_file(tmp_path: Path) -> None:
    (tmp_path / "copy").write_text("kept")
    with (
        owner(tmp_path, lambda target: target.write_text("rollups")),
        pytest.raises(CopyRefused, match="exists already"),
    ):
        request_copy(tmp_path, "analytics", tmp_path / "copy")
    assert (tmp_path / "copy").read_text() == "kept"


def test_claims_left_by_an_owner_that_died_are_swept(tmp_path: Path) -> None:
    requests = tmp_path / REQUESTS
    requests.mkdir()
    died = requests / "analytics-1.taken"  # its owner's pid no longer runs
    died.write_text(json.dumps({"target": "/x", "pid": str(_dead_pid())}))
    unnoted = requests / "analytics-2.taken"  # killed before it noted its pid
    unnoted.write_text(json.dumps({"target": "/x"}))
    os.utime(unnoted, (time.time() - 3600, time.time() - 3600))
    mine = requests / "analytics-5.taken"  # a predecessor's with this pid (a container)
    mine.write_text(json.dumps({"target": "/x", "pid": str(os.getpid())}))
    working = requests / "analytics-3.taken"  # a copy still being made, however long
    working.write_text(json.dumps({"target": "/x", "pid": str(os.getppid())}))
    os.utime(working, (time.time() - 3600, time.time() - 3600))
    just_claimed = requests / "analytics-4.taken"
    just_claimed.write_text(json.dumps({"target": "/x"}))
    serve_pending(requests, "analytics", lambda target: None)
    assert sorted(p.name for p in requests.iterdir()) == [working.name, just_claimed.name]


def test_an_asker_whose_claim_was_dropped_stops_waiting_at_once(tmp_path: Path) -> None:
    def claim_and_drop() -> None:
        taken = _claim_first(tmp_path / REQUESTS)
        time.sleep(0.5)  # past the asker's wait for a claim
        taken.unlink()  # swept, with no answer

    thread = threading.Thread(target=claim_and_drop)
    thread.start()
    started = time.monotonic()
    with pytest.raises(CopyRefused, match="stopped while it made the copy"):
        request_copy(tmp_path, "analytics", tmp_path / "copy", claim_s=0.2, finish_s=60)
    thread.join()
    assert time.monotonic() - started < 10
