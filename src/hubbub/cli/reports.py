"""`hubbub reports best-times`: the week's half-hours scored for posting, as a heat map."""

from __future__ import annotations

import dataclasses
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer

from hubbub.analytics.best_times import SLOTS_PER_DAY, BestTimePolicy, BestTimes, best_times
from hubbub.bootstrap import open_rollups
from hubbub.cli.common import console, fail, load_settings, print_json
from hubbub.kernel.clock import SystemClock

app = typer.Typer(help="Reports over the analytics rollups.", no_args_is_help=True)
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
SHADES = " ░▒▓█"


@app.command("best-times")
def best_times_command(
    zone: Annotated[str, typer.Option(help="IANA time zone, e.g. Europe/Paris.")] = "UTC",
    language: Annotated[str, typer.Option(help="Language of the firehose's posts.")] = "en",
    network: Annotated[str, typer.Option(help="bluesky or mastodon.")] = "bluesky",
    channel: Annotated[str | None, typer.Option(help="A channel: its own posts.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Tenant (default: HUBBUB_TENANT).")] = None,
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every half-hour of the week scored by the engagement its posts drew in 24 hours."""
    settings = load_settings()
    try:
        where = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        fail(f"unknown time zone {zone!r}: use an IANA name")
    policy = BestTimePolicy(
        settings.best_time_weeks, settings.best_time_min_posts, settings.best_time_prior_posts
    )
    clock = SystemClock()
    store = open_rollups(settings, clock)
    try:
        answer = best_times(
            store.query, zone=where, network=network, language=language,
            tenant=tenant or settings.tenant, channel=channel, now_us=clock.now_us(),
            policy=policy,
        )  # fmt: skip
    finally:
        store.close()
    if json:
        print_json(dataclasses.asdict(answer))
        return
    for line in heat_map(answer):
        console.print(line, highlight=False)


def heat_map(answer: BestTimes) -> list[str]:
    """Seven rows of 48 half-hours, darker where the score is higher; then the best five."""
    scores = [slot.score for slot in answer.slots]
    low, high = min(scores), max(scores)
    span = (high - low) or 1.0
    shade = [SHADES[min(4, int((s - low) / span * 5))] for s in scores]
    lines = [
        f"{answer.zone}, from {answer.source} posts ({answer.posts})",
        "    " + "".join(f"{hour:<4}" for hour in range(0, 24, 2)),
    ]
    for day, name in enumerate(DAYS):
        lines.append(f"{name} " + "".join(shade[day * SLOTS_PER_DAY : (day + 1) * SLOTS_PER_DAY]))
    best = ", ".join(f"{DAYS[s.day]} {s.time} ({s.score:g})" for s in answer.top)
    lines.append(f"best: {best}")
    return lines
