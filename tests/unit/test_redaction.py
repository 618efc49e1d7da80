"""No password of a database, Redis or NATS URL reaches a log line."""

from __future__ import annotations

import pytest
import structlog

from hubbub.kernel.telemetry import configure_logging, redact
from hubbub.settings import Settings


def test_passwords_in_urls_and_connection_strings_are_redacted() -> None:
    said = redact(
        "cannot reach nats://hub:n4ts@10.0.0.5:4222 nor postgresql://app:pg-s3cret@db/hubbub"
        " (host=db password=kw-s3cret dbname=hubbub); mail ops@example.com"
    )
    for secret in ("n4ts", "pg-s3cret", "kw-s3cret"):
        assert secret not in said
    assert "nats://hub:***@10.0.0.5:4222" in said
    assert "postgresql://app:***@db/hubbub" in said
    assert "ops@example.com" in said  # only credentials go


@pytest.mark.parametrize(
    ("text", "secret", "shown"),
    [
        ("postgresql://ops@corp:s3cret@db/hubbub", "s3cret", "postgresql://ops@corp:***@db/hubbub"),
        ("redis://:p@ss@cache:6379", "ss", "redis://:***@cache:6379"),
        ("postgresql://u:pa/ss@db:5432/x", "pa/ss", "postgresql://u:***@db:5432/x"),
        ("nats://u:a/b@c@nats:4222 next", "a/b@c", "nats://u:***@nats:4222 next"),
        ("dbname=x PASSWORD=Up5ecret", "Up5ecret", "PASSWORD=***"),
        ("host=db password='two words' dbname=x", "two words", "password=*** dbname=x"),
        ('host=db password = "q\\"uoted" user=a', "uoted", "password = *** user=a"),
    ],
)
def test_a_password_with_an_at_sign_or_spaces_is_redacted_whole(
    text: str, secret: str, shown: str
) -> None:
    said = redact(text)
    assert secret not in said
    assert shown in said


def test_a_link_that_is_not_a_password_is_left_as_it_is() -> None:
    text = "see http://host:8080?next=a@b or http://host/x@y, mail ops@example.com"
    assert redact(text) == text


def test_a_log_line_carries_no_password(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json")
    structlog.get_logger().error(
        "event log unreachable", url="redis://:r3dis@127.0.0.1:6379/0", error="auth failed"
    )
    line = capsys.readouterr().err
    assert "r3dis" not in line
    assert "redis://:***@127.0.0.1:6379/0" in line


def test_server_urls_are_secrets_in_the_settings() -> None:
    settings = Settings(
        nats_url="nats://hub:n4ts@nats:4222",
        redis_url="redis://:r3dis@redis:6379/0",
        mentions_postgres_url="postgresql://app:pg1@db/m",
        analytics_postgres_url="postgresql://app:pg2@db/a",
        relational_url="postgresql+psycopg://app:pg3@db/r",
    )
    shown = f"{settings!r} {settings.model_dump_json()}"
    for secret in ("n4ts", "r3dis", "pg1", "pg2", "pg3"):
        assert secret not in shown
    child = Settings.model_validate_json(settings.revealed_json())
    assert child.nats_url.get_secret_value() == "nats://hub:n4ts@nats:4222"
    assert child.relational == "postgresql+psycopg://app:pg3@db/r"
