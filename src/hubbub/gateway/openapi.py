"""The whole API in one OpenAPI document: the gateway's own routes and every service's."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI

from hubbub.gateway.health import Health
from hubbub.gateway.http1 import UpstreamError
from hubbub.gateway.routing import SERVICE_ROUTES
from hubbub.gateway.spec import describe_answers
from hubbub.gateway.upstreams import Upstream


async def merged_spec(
    own: FastAPI, upstreams: Mapping[str, Upstream], health: Health, own_paths: frozenset[str]
) -> dict[str, Any]:
    """The gateway's spec with every service's paths and schemas merged in, from those
    services that answer; a service's `own_paths` (health, docs) are the gateway's."""
    spec: dict[str, Any] = json.loads(json.dumps(own.openapi()))  # FastAPI's is cached
    for name in dict.fromkeys(SERVICE_ROUTES.values()):  # every service, once
        upstream = upstreams.get(name)
        if upstream is not None and not health.down(name):
            with contextlib.suppress(UpstreamError, ValueError):
                status, body = await upstream.get("/openapi.json")
                if status == 200:
                    _merge(spec, json.loads(body), own_paths)
    spec.setdefault("components", {})["securitySchemes"] = {
        "apiKey": {"type": "http", "scheme": "bearer", "description": "hb_... API key"}
    }
    spec["security"] = [{"apiKey": []}]
    describe_answers(spec, tuple(SERVICE_ROUTES))
    return spec


def _merge(spec: dict[str, Any], other: dict[str, Any], own_paths: frozenset[str]) -> None:
    for path, item in other.get("paths", {}).items():
        if path not in own_paths:
            spec["paths"][path] = item
    schemas = other.get("components", {}).get("schemas", {})
    spec.setdefault("components", {}).setdefault("schemas", {}).update(schemas)
