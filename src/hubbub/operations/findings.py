"""What a doctor's check finds, and the limits every check keeps to."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Literal

Status = Literal["ok", "warn", "fail"]
GIB: Final = 1024**3


@dataclass(frozen=True)
class Finding:
    """What one check found about one thing: `detail` says what, `fix` what to do."""

    check: str
    status: Status
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class Limits:
    """How long a check may take, and the free space under which the data dir warns."""

    timeout_s: float = 2.0
    min_free_bytes: int = GIB


Check = Callable[[], Awaitable[list[Finding]]]


def counted(count: int, noun: str) -> str:
    """`1 stream`, `2 streams`: a count as a finding says it."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"
