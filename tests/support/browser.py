"""Debian's Chromium, as the browser tests launch it: the benchmark's own settings
(headless, never a browser Playwright downloads, no background traffic)."""

from __future__ import annotations

from pathlib import Path

from hubbub.benchmarks.web import CHROMIUM as _CHROMIUM
from hubbub.benchmarks.web import LAUNCH_ARGS

CHROMIUM = Path(_CHROMIUM)
__all__ = ["CHROMIUM", "LAUNCH_ARGS"]
