"""An HTTP load generator, run as a process of its own beside the server it measures.

`python -m hubbub.benchmarks.loadgen --port P --paths FILE --seconds S [--rate R]
[--header "Name: value" ...]` prints one JSON object: requests, errors, rps, and latency
percentiles in ms. Every request carries the `--header`s given (the signed headers a
role asks of its callers, say).

It speaks HTTP/1.1 over keep-alive connections with plain asyncio streams, which is
far cheaper per request than a general client, so the generator is not what limits a
measurement. With `--rate`, requests are sent on a fixed schedule (open loop) and each
latency counts from the moment its request was due, so a stalled server shows in the
percentiles instead of slowing the generator down (no coordinated omission). Without
it, each connection sends its next request as soon as it has the answer (closed loop).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path


async def _connection(
    host: str,
    port: int,
    requests: list[bytes],
    due: asyncio.Queue[tuple[float, int]],
    latencies: list[float],
    errors: list[str],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while True:
            scheduled, n = await due.get()
            if n < 0:
                return
            writer.write(requests[n % len(requests)])
            head = await reader.readuntil(b"\r\n\r\n")
            status = head[9:12]
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - scheduled)
            if status != b"200":
                errors.append(status.decode())
    finally:
        writer.close()


def header_line(text: str) -> str:
    """`Name: value` checked and tidied (raises argparse.ArgumentTypeError otherwise)."""
    name, colon, value = text.partition(":")
    if not colon or not name.strip() or any(c in text for c in "\r\n"):
        raise argparse.ArgumentTypeError(f"a header is 'Name: value', not {text!r}")
    return f"{name.strip()}: {value.strip()}"


def _requests(host: str, paths: list[str], headers: list[str]) -> list[bytes]:
    extra = "".join(f"{line}\r\n" for line in headers)
    return [
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: keep-alive\r\n{extra}\r\n".encode()
        for path in paths
    ]


async def run_load(
    host: str,
    port: int,
    paths: list[str],
    seconds: float,
    rate: float,
    connections: int,
    headers: list[str] | None = None,
) -> dict[str, float | int]:
    """Load `paths` (in turn) for `seconds`; each request carries `headers`
    ("Name: value" lines)."""
    requests = _requests(host, paths, headers or [])
    due: asyncio.Queue[tuple[float, int]] = asyncio.Queue(maxsize=0 if rate else connections)
    latencies: list[float] = []
    errors: list[str] = []
    workers = [
        asyncio.create_task(_connection(host, port, requests, due, latencies, errors))
        for _ in range(connections)
    ]
    started = time.perf_counter()
    end = started + seconds
    n = 0
    if rate:
        interval = 1 / rate
        while (now := time.perf_counter()) < end:
            while started + n * interval <= now:
                due.put_nowait((started + n * interval, n))
                n += 1
            await asyncio.sleep(interval)
    else:
        while time.perf_counter() < end:
            await due.put((time.perf_counter(), n))
            n += 1
    for _ in workers:
        await due.put((0.0, -1))
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)

    def ms(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)

    return {
        "requests": len(ordered),
        "errors": len(errors),
        "seconds": round(elapsed, 2),
        "rps": round(len(ordered) / elapsed),
        "target_rps": rate,
        "connections": connections,
        "p50_ms": ms(0.5) if ordered else 0.0,
        "p99_ms": ms(0.99) if ordered else 0.0,
        "max_ms": round(ordered[-1] * 1000, 3) if ordered else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--paths", type=Path, required=True, help="One request path a line.")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=0.0, help="Requests/s; 0: closed loop.")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--header",
        type=header_line,
        action="append",
        default=[],
        help="'Name: value' sent with every request; repeatable.",
    )
    args = parser.parse_args()
    paths = args.paths.read_text().splitlines()
    result = asyncio.run(
        run_load(
            args.host, args.port, paths, args.seconds, args.rate, args.connections, args.header
        )
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
