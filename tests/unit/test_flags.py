"""Flag evaluation: the rollout hash, precedence, and the OpenFeature provider."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from hubbub.eventlog.sqlite import SqliteEventLog
from hubbub.gateway.flags import Flag, FlagBook, bucket, evaluate, set_flag
from hubbub.gateway.openfeature_provider import install
from hubbub.kernel.clock import FixedClock


def flag(
    *,
    enabled: bool = True,
    percent: float = 0.0,
    allow: frozenset[str] = frozenset(),
    deny: frozenset[str] = frozenset(),
) -> Flag:
    return Flag(
        scope="platform", name="new-composer", enabled=enabled, percent=percent,
        allow=allow, deny=deny, description="",
    )  # fmt: skip


def test_the_bucket_is_unleash_normalised_value_less_one() -> None:
    # The cross-client vectors of Unleash's SDKs: normalizedValue("123", "gr1") == 73 and
    # normalizedValue("999", "groupX") == 25; a tenant keeps its place if we move to it.
    assert int(bucket("gr1", "123")) == 73 - 1
    assert int(bucket("groupX", "999")) == 25 - 1


def test_the_bucket_is_stable_and_depends_on_the_flag() -> None:
    assert bucket("new-composer", "acme") == bucket("new-composer", "acme")
    buckets = {bucket(f"flag-{n}", "acme") for n in range(50)}
    assert len(buckets) > 40  # each flag shuffles tenants its own way
    assert all(0 <= b < 100 for b in buckets)


@given(subject=st.text(max_size=40), p=st.floats(0, 100), q=st.floats(0, 100))
def test_a_rollout_only_grows_as_its_percent_rises(subject: str, p: float, q: float) -> None:
    low, high = sorted((p, q))
    on_at_low, _ = evaluate(flag(percent=low), subject)
    on_at_high, _ = evaluate(flag(percent=high), subject)
    assert not on_at_low or on_at_high


def test_thirty_percent_of_ten_thousand_tenants_are_on() -> None:
    rollout = flag(percent=30)
    on = sum(evaluate(rollout, f"tenant-{n}")[0] for n in range(10_000))
    assert 2_800 <= on <= 3_200


def test_nobody_at_zero_everybody_at_a_hundred() -> None:
    tenants = [f"tenant-{n}" for n in range(1000)]
    assert not any(evaluate(flag(percent=0), t)[0] for t in tenants)
    assert all(evaluate(flag(percent=100), t)[0] for t in tenants)


def test_kill_beats_deny_beats_allow_beats_percent() -> None:
    both = frozenset({"acme"})
    assert evaluate(flag(enabled=False, percent=100, allow=both), "acme") == (False, "DISABLED")
    assert evaluate(flag(percent=100, allow=both, deny=both), "acme") == (False, "TARGETING_MATCH")
    assert evaluate(flag(percent=0, allow=both), "acme") == (True, "TARGETING_MATCH")
    assert evaluate(flag(percent=100), "acme") == (True, "SPLIT")
    assert evaluate(flag(percent=0), "acme") == (False, "SPLIT")


@pytest.fixture
def client_api() -> Iterator[None]:
    yield
    api.shutdown()  # the OpenFeature API is process-wide: leave the no-op provider behind


async def test_the_provider_answers_through_the_openfeature_client(
    tmp_path: Path, client_api: None
) -> None:
    event_log = SqliteEventLog(tmp_path / "log.db")
    try:
        await set_flag(
            event_log, "platform", "new-composer", enabled=True, percent=0, allow=["acme"],
            deny=[], description="the new composer", clock=FixedClock(),
        )  # fmt: skip
        book = FlagBook(event_log)
        await book.catch_up()
    finally:
        await event_log.close()
    install(book)
    client = api.get_client()
    assert api.get_provider_metadata().name == "hubbub"

    on = client.get_boolean_details("new-composer", False, EvaluationContext("acme"))
    assert (on.value, on.reason, on.error_code) == (True, Reason.TARGETING_MATCH, None)
    off = client.get_boolean_details("new-composer", True, EvaluationContext("globex"))
    assert (off.value, off.reason) == (False, Reason.SPLIT)

    unknown = client.get_boolean_details("no-such-flag", True, EvaluationContext("acme"))
    assert (unknown.value, unknown.reason) == (True, Reason.DEFAULT)
    assert unknown.error_code == ErrorCode.FLAG_NOT_FOUND

    anonymous = client.get_boolean_details("new-composer", False)
    assert (anonymous.value, anonymous.error_code) == (False, ErrorCode.TARGETING_KEY_MISSING)

    text = client.get_string_details("new-composer", "blue", EvaluationContext("acme"))
    assert (text.value, text.error_code) == ("blue", ErrorCode.TYPE_MISMATCH)
    number = client.get_integer_details("new-composer", 7, EvaluationContext("acme"))
    assert (number.value, number.error_code) == (7, ErrorCode.TYPE_MISMATCH)


async def test_a_tenant_flag_rolls_out_by_the_subject_attribute(
    tmp_path: Path, client_api: None
) -> None:
    event_log = SqliteEventLog(tmp_path / "log.db")
    try:
        await set_flag(
            event_log, "acme", "dark-mode", enabled=True, percent=0, allow=["user-7"],
            deny=[], description="", clock=FixedClock(),
        )  # fmt: skip
        book = FlagBook(event_log)
        await book.catch_up()
    finally:
        await event_log.close()
    install(book)
    client = api.get_client()

    def value(subject: str) -> bool:
        context = EvaluationContext("acme", {"subject": subject})
        return client.get_boolean_value("dark-mode", False, context)

    assert value("user-7")
    assert not value("user-8")
    assert not client.get_boolean_value("dark-mode", False, EvaluationContext("globex"))
