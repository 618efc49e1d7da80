"""`GET /v1/best-times`: the week's half-hours scored for posting, in a time zone.

For a channel of the caller's tenant with enough posts, from its own published posts;
otherwise from the firehose's posts of the network and language (`source` says which).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field

from hubbub.analytics.best_times import BestTimePolicy, best_times
from hubbub.analytics.ports import RollupStore
from hubbub.analytics.watches_api import tenant_of
from hubbub.kernel.clock import Clock
from hubbub.settings import Settings


class SlotRead(BaseModel):
    day: int = Field(ge=0, le=6, description="Day of the week, 0 is Monday.")
    time: str = Field(description="Start of the half-hour, HH:MM local.")
    score: float = Field(description="Engagement per post in 24 hours, shrunk to the mean.")


class BestTimesRead(BaseModel):
    zone: str
    source: str = Field(description="own: the channel's posts; firehose: the network's.")
    posts: int = Field(description="Posts the scores are made of.")
    slots: list[SlotRead] = Field(description="The 336 half-hours of the week, Monday first.")
    top: list[SlotRead] = Field(description="The 5 best, best first.")


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise HTTPException(422, f"unknown time zone {name!r}: use an IANA name") from error


def policy_of(settings: Settings) -> BestTimePolicy:
    return BestTimePolicy(
        weeks=settings.best_time_weeks,
        min_posts=settings.best_time_min_posts,
        prior_posts=settings.best_time_prior_posts,
    )


def build_router(
    *, rollups_of: Callable[[], Awaitable[RollupStore]], settings: Settings, clock: Clock
) -> APIRouter:
    """The best-times route, over the rollups `rollups_of` opens."""
    router = APIRouter(prefix="/v1/best-times", tags=["reports"])

    @router.get("", response_model=BestTimesRead)
    async def best(
        request: Request,
        zone: Annotated[str, Query(description="IANA time zone of the slots.")] = "UTC",
        language: Annotated[str, Query(max_length=35)] = "en",
        network: Annotated[str, Query(max_length=40)] = "bluesky",
        channel: Annotated[str | None, Query(max_length=200)] = None,
    ) -> dict[str, Any]:
        """Every half-hour of the week scored by the engagement posts made then received
        in their first 24 hours, over the last weeks; the channel's own posts when it
        has enough, else the firehose's in the language and network."""
        tenant = tenant_of(request)
        store = await rollups_of()
        try:
            answer = await asyncio.to_thread(
                best_times,
                store.query,
                zone=_zone(zone), network=network, language=language, tenant=tenant,
                channel=channel, now_us=clock.now_us(), policy=policy_of(settings),
            )  # fmt: skip
        except ValueError as error:
            raise HTTPException(422, str(error)) from error
        return dataclasses.asdict(answer)

    return router
