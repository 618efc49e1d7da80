"""Every operation of the gateway's merged API description, fuzzed by schemathesis over
real HTTP: whatever it sends, no operation answers a server error.

The stack of `tests.e2e.test_gateway` runs on an event loop of its own, in a thread,
with the gateway on a real local port; schemathesis calls it from the test's thread.
A tenant's owner key calls the tenant's routes; the operator's token the operator's
(`/v1/tenants`, `/v1/platform/...`), each on a stack of its own, so the operator's
route changes cannot steer the tenant's requests elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Coroutine, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import pytest
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, Case, CheckFunction, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Ok

from hubbub.gateway.app import observed
from hubbub.gateway.routing import SERVICE_ROUTES
from tests.conftest import serving
from tests.support.stack import OPERATOR, auth, start_stack

T = TypeVar("T")
Operation = APIOperation[Any, Any, Any, Any]
OPERATOR_PATHS: Final = ("/v1/tenants", "/v1/platform/")
# No server error; every status, content type and body is one the spec describes (the
# gateway describes its own answers and the services' hand-raised ones,
# `hubbub.gateway.spec`; reports describe their CSV as text/csv).
CHECKS: Final[list[CheckFunction]] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
WINDOW: Final = {"start": "2026-03-29T00:00:00Z", "end": "2026-03-30T00:00:00+01:00"}
LONE_SURROGATE: Final = "x\ud800"
SEED: Final = 20_260_101
EXAMPLES: Final = 40  # per operation: about 30 s of CPU for this file on 2 cores
START_TIMEOUT_S: Final = 60.0
REQUEST_TIMEOUT_S: Final = 10.0  # a hang fails the test rather than stalling it
UNLIMITED: Final = {"rate_limit_key_burst": 1_000_000, "rate_limit_tenant_burst": 1_000_000}


@dataclass
class LiveStack:
    """The gateway's stack served on a real port from a thread's own event loop."""

    base_url: str
    owner_token: str
    spec: dict[str, Any]

    def token_for(self, path: str) -> str:
        """The operator's token for the operator's routes, the owner key for the rest."""
        return OPERATOR if path.startswith(OPERATOR_PATHS) else self.owner_token


def _run(loop: asyncio.AbstractEventLoop, work: Coroutine[Any, Any, T]) -> T:
    return asyncio.run_coroutine_threadsafe(work, loop).result(START_TIMEOUT_S)


async def _start(data_dir: Path) -> tuple[str, str, dict[str, Any], AsyncExitStack]:
    """The stack, the gateway on a port, a tenant; answers the URL, the owner's token,
    the merged spec and what closes it all."""
    built, exits = await start_stack(data_dir, **UNLIMITED)
    try:
        base_url = await exits.enter_async_context(serving(observed(built.gateway)))
        owner = await built.tenant("schemathesis")
        spec = (await built.client.get("/openapi.json")).json()
    except BaseException:
        await exits.aclose()
        raise
    return base_url, owner["token"], spec, exits


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveStack]:
    """A stack of its own for the test, closed on its loop after, then the loop."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="stack", daemon=True)
    thread.start()
    try:
        base_url, token, spec, exits = _run(loop, _start(tmp_path / "data"))
        yield LiveStack(base_url, token, spec)
        _run(loop, exits.aclose())
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(START_TIMEOUT_S)
        loop.close()


def _operations(live: LiveStack, operator: bool) -> list[Operation]:
    """The spec's operations, the operator's or the tenants'; fails on one that
    schemathesis cannot read."""
    schema = schemathesis.openapi.from_dict(live.spec)
    schema.config.update(base_url=live.base_url)
    found: list[Operation] = []
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            pytest.fail(f"the spec describes an operation badly: {result.err()}")
        found.append(result.ok())
    return [op for op in found if op.path.startswith(OPERATOR_PATHS) == operator]


def _fuzz(operation: Operation, live: LiveStack) -> None:
    """Send the operation cases that fit its description and cases that do not (a
    missing key among them); fail on a server error, or on no answer in time."""
    headers = auth(live.token_for(operation.path))
    cases = st.one_of(
        *[operation.as_strategy(mode) for mode in GenerationMode],
        *[operation.as_strategy(query=WINDOW)] * _has_window(operation),
    )

    @seed(SEED)
    @settings(
        max_examples=EXAMPLES, deadline=None, database=None,
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    @given(case=cases)
    def fuzzed(case: Case[Any]) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS, timeout=REQUEST_TIMEOUT_S)

    fuzzed()


def _has_window(operation: Operation) -> bool:
    """Whether the operation reads a window of time (`start` and `end`): most of those
    generated are out of range or too long, so a third of its cases get a real one."""
    names = {parameter.name for parameter in operation.iter_parameters()}
    return {"start", "end"} <= names


def _fuzz_all(live: LiveStack, subtests: pytest.Subtests, operator: bool) -> None:
    """Every operation of one side, each reported as a subtest of its own."""
    operations = _operations(live, operator)
    for operation in operations:
        with subtests.test(operation.label):
            _fuzz(operation, live)


def test_the_spec_has_the_gateways_routes_and_every_services(live: LiveStack) -> None:
    """The gateway leaves out a service whose spec it cannot fetch: then the fuzzing
    below would pass while testing less."""
    paths = set(live.spec["paths"])
    for prefix in (*SERVICE_ROUTES, "/v1/tenants", "/v1/keys", "/v1/users", "/v1/flags",
                   "/v1/platform/routes", "/v1/platform/flags"):  # fmt: skip
        assert any(path.startswith(prefix) for path in paths), prefix


FUZZ_TIMEOUT_S: Final = 900
"""The whole fuzzing of one side: 40 cases of each of a hundred-odd operations took
more than the suite's 300 s on a busy two-core machine; a hang still fails each request
within `REQUEST_TIMEOUT_S`."""


@pytest.mark.timeout(FUZZ_TIMEOUT_S)
def test_no_tenant_route_answers_a_server_error(live: LiveStack, subtests: pytest.Subtests) -> None:
    _fuzz_all(live, subtests, operator=False)


@pytest.mark.timeout(FUZZ_TIMEOUT_S)
def test_no_operator_route_answers_a_server_error(
    live: LiveStack, subtests: pytest.Subtests
) -> None:
    _fuzz_all(live, subtests, operator=True)


async def test_a_lone_surrogate_in_any_json_body_is_a_422(tmp_path: Path) -> None:
    """JSON may escape half of a UTF-16 pair (`"\\ud800"`): pydantic refuses the string,
    and the 422 naming it used to fail to encode, a 500. Every string field of every
    JSON body in the spec, through the gateway."""
    built, exits = await start_stack(tmp_path / "data", **UNLIMITED)
    async with exits:
        owner = await built.tenant("surrogates")
        spec = (await built.client.get("/openapi.json")).json()
        sent = 0
        for method, path, field, value in _string_fields(spec):
            token = OPERATOR if path.startswith(OPERATOR_PATHS) else owner["token"]
            answer = await built.client.request(
                method, path.replace("{name}", "probe").replace("{token}", "A" * 64),
                content=json.dumps({field: value}),
                headers={**auth(token), "Content-Type": "application/json"},
            )  # fmt: skip
            assert answer.status_code == 422, (method, path, field, answer.text)
            assert answer.json()["detail"], (method, path, field)
            sent += 1
    assert sent >= 10


def _string_fields(spec: dict[str, Any]) -> Iterator[tuple[str, str, str, object]]:
    """`(method, path, field, value)`: a lone surrogate for each string (or list of
    strings) field of each JSON request body."""
    schemas = spec["components"]["schemas"]
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is None:
                continue
            ref = body["schema"]["$ref"].rsplit("/", 1)[1]
            for field, described in schemas[ref]["properties"].items():
                kinds = {described.get("type")} | {
                    a.get("type") for a in described.get("anyOf", [])
                }
                if "string" in kinds:
                    yield method.upper(), path, field, LONE_SURROGATE
                elif described.get("items", {}).get("type") == "string":
                    yield method.upper(), path, field, [LONE_SURROGATE]
