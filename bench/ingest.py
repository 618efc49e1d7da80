"""Ingest benchmark; same as `hubbub bench ingest --json` (options pass through)."""

import sys

from hubbub.cli import app

if __name__ == "__main__":
    app(["bench", "ingest", "--json", *sys.argv[1:]])
