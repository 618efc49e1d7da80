"""The synthetic firehose in an embedded log, as the ingest role would leave it: what the
benchmarks of the roles that read the log (analytics, best time) start from."""

from __future__ import annotations

from pathlib import Path

from hubbub.eventlog.sqlite import SqliteEventLog
from hubbub.ingest.service import Ingestor
from hubbub.ingest.sqlite import SqliteIngestState
from hubbub.kernel.clock import SystemClock
from hubbub.settings import Settings
from hubbub.synthetic.firehose import FirehoseSpec, generate_firehose

PUSH: int = 50_000
"""Lines a push: what the ingest role takes at once."""


async def ingest_firehose(directory: Path, spec: FirehoseSpec) -> SqliteEventLog:
    """Ingest the firehose `spec` makes into the embedded log in `directory`, as Jetstream
    lines pushed to the ingest role; returns the log, open."""
    from hubbub.bootstrap import mapping_for  # the adapters: bootstrap is above us

    settings, clock = Settings(data_dir=directory), SystemClock()
    log = SqliteEventLog(settings.log_path)
    state = SqliteIngestState(settings.ingest_state_path)
    ingestor = Ingestor(mapping_for("jetstream", settings, clock), log, state, clock)
    await ingestor.start()
    try:
        batch: list[bytes] = []
        for line in generate_firehose(spec):
            batch.append(line)
            if len(batch) == PUSH:
                await ingestor.submit(batch)
                batch = []
        if batch:
            await ingestor.submit(batch)
    finally:
        await ingestor.stop()
        await state.close()
    return log
