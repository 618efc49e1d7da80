"""`GET /v1/mentions?q=...&limit=10`: the most followed pages matching what was typed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from hubbub.bootstrap import Platform
from hubbub.mentions.normalize import InvalidQuery
from hubbub.mentions.service import MAX_LIMIT


class MentionRead(BaseModel):
    id: str
    handle: str | None
    display_name: str | None
    followers: int
    source: str


def build_router(platform: Platform) -> APIRouter:
    router = APIRouter(prefix="/v1/mentions", tags=["mentions"])

    @router.get("")
    async def mentions(
        q: Annotated[str, Query(description="What was typed after @.")],
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 10,
    ) -> list[MentionRead]:
        """Pages whose handle or a word of whose name starts with `q`, most followed first."""
        view = await platform.mentions()
        try:
            found = view.suggest(q, limit)
        except InvalidQuery as error:
            raise HTTPException(422, str(error)) from error
        return [
            MentionRead(
                id=page.id,
                handle=page.handle,
                display_name=page.display_name,
                followers=page.followers,
                source=page.source,
            )
            for page in found
        ]

    return router
