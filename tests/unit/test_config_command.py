"""`hubbub config`: every setting's effective value and where it came from, as an
operator reads it in a terminal or a script, with no secret ever printed."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import Result
from cryptography.fernet import Fernet
from typer.testing import CliRunner

from hubbub.cli import app

WIDE = {"COLUMNS": "300"}  # one row a line: a table cell wrapped would split a value


def hubbub(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={**WIDE, **env})


def settings_json(env: dict[str, str], *options: str) -> dict[str, dict[str, object]]:
    result = hubbub(env, *options, "config", "--json")
    assert result.exit_code == 0, result.output
    found: dict[str, dict[str, object]] = json.loads(result.stdout)["settings"]
    return found


def row(output: str, variable: str) -> str:
    """The table's line of one setting."""
    lines = [line for line in output.splitlines() if f" {variable} " in line]
    assert len(lines) == 1, output
    return lines[0]


def test_each_setting_says_whether_a_default_a_variable_or_an_option_set_it(
    tmp_path: Path,
) -> None:
    env = {"HUBBUB_EVENT_LOG": "jetstream", "hubbub_batch_size": "123"}
    found = settings_json(env, "--data-dir", str(tmp_path))

    assert found["data_dir"] == {
        "value": str(tmp_path), "source": "option", "variable": "HUBBUB_DATA_DIR",
        "origin": "--data-dir",
    }  # fmt: skip
    assert found["event_log"]["value"] == "jetstream"
    assert found["event_log"]["source"] == "environment"
    assert found["batch_size"]["value"] == 123  # typed, as the variable was read
    assert found["batch_size"]["origin"] == "hubbub_batch_size"  # names are not case-sensitive
    assert found["log_segment_size"] == {
        "value": 1000, "source": "default", "variable": "HUBBUB_LOG_SEGMENT_SIZE", "origin": "",
    }  # fmt: skip
    # A default that means something else says what it comes to.
    assert found["relational_url"]["value"] == f"sqlite:///{tmp_path / 'relational.db'}"
    assert found["relational_url"]["source"] == "default"
    assert found["relational_url"]["origin"] == "SQLite in the data dir"


def test_an_option_wins_over_its_variable_and_says_so(tmp_path: Path) -> None:
    env = {"HUBBUB_DATA_DIR": "/srv/elsewhere", "HUBBUB_EVENT_LOG": "jetstream"}
    result = hubbub(env, "--data-dir", str(tmp_path), "--event-log", "sqlite", "config")

    assert result.exit_code == 0, result.output
    line = row(result.stdout, "HUBBUB_DATA_DIR")
    assert str(tmp_path) in line
    assert "option --data-dir (over HUBBUB_DATA_DIR)" in line
    assert "/srv/elsewhere" not in result.stdout
    assert "option --event-log (over HUBBUB_EVENT_LOG)" in row(result.stdout, "HUBBUB_EVENT_LOG")
    assert "environment" not in row(result.stdout, "HUBBUB_EVENT_LOG")
    assert "default" in row(result.stdout, "HUBBUB_LOG_SEGMENT_SIZE")


SECRETS = {
    "HUBBUB_RELATIONAL_URL": "postgresql+psycopg://app:pg-S3cret@db:5432/hubbub",
    "HUBBUB_NATS_URL": "nats://n4ts-T0ken@nats-1:4222,nats://hub:n4ts-Pw@nats-2:4222",
    "HUBBUB_REDIS_URL": "redis://:r3dis-Pw@redis:6379/0",
    "HUBBUB_MENTIONS_POSTGRES_URL": "host=db password=kw-S3cret dbname=mentions",
    "HUBBUB_ADMIN_TOKEN": "adm1n-T0ken",
    "HUBBUB_INTERNAL_SECRET": "int3rnal-S3cret",
    "HUBBUB_SECRET_KEY": Fernet.generate_key().decode(),
    "HUBBUB_SMTP_PASSWORD": "smtp-Pa55",
    "HUBBUB_LEGACY_URL": "https://old:l3gacy-Pw@legacy.example/app?api_token=qu3ry-T0ken&x=1",
}


def test_no_secret_is_ever_printed_only_where_it_goes() -> None:
    table = hubbub(SECRETS, "config")
    as_json = hubbub(SECRETS, "config", "--json")

    for result in (table, as_json):
        assert result.exit_code == 0, result.output
        for variable, secret in SECRETS.items():
            for part in ("pg-S3cret", "n4ts-T0ken", "n4ts-Pw", "r3dis-Pw", "kw-S3cret"):
                assert part not in result.output
            assert "l3gacy-Pw" not in result.output
            assert "qu3ry-T0ken" not in result.output
            if "://" not in secret and " " not in secret:
                assert secret not in result.output, variable
    shown = json.loads(as_json.stdout)["settings"]
    # What the URL names stays visible: only its password goes.
    assert shown["relational_url"]["value"] == "postgresql+psycopg://app:***@db:5432/hubbub"
    assert shown["nats_url"]["value"] == "nats://***@nats-1:4222,nats://hub:***@nats-2:4222"
    assert shown["redis_url"]["value"] == "redis://:***@redis:6379/0"
    assert shown["mentions_postgres_url"]["value"] == "host=db password=*** dbname=mentions"
    assert shown["legacy_url"]["value"] == ("https://old:***@legacy.example/app?api_token=***&x=1")
    for name in ("admin_token", "internal_secret", "secret_key", "smtp_password"):
        assert shown[name] == {
            "value": "***", "source": "environment", "variable": f"HUBBUB_{name.upper()}",
            "origin": f"HUBBUB_{name.upper()}",
        }  # fmt: skip
    line = row(table.stdout, "HUBBUB_RELATIONAL_URL")
    assert "postgresql+psycopg://app:***@db:5432/hubbub" in line
    assert line.rstrip(" │").endswith("environment")


AWKWARD_PASSWORDS = {
    # SQLAlchemy, libpq and redis-py read a password up to its `@`, whatever it holds.
    "HUBBUB_RELATIONAL_URL": "postgresql+psycopg://app:sl4sh-A/sl4sh-B@db/h",
    "HUBBUB_LISTENING_DB_URL": "postgresql://app:c0mma-A,c0mma-B@db/h",
    "HUBBUB_NOTIFICATIONS_DB_URL": "postgresql://app:h4sh-A#h4sh-B@db/h",
    "HUBBUB_REDIS_URL": "redis://:qu3ry-A?qu3ry-B@redis:6379/0",
    "HUBBUB_NATS_URL": (
        "nats://alice:n4ts-First@nats-1:4222,nats://bob:n4ts-Second@nats-2:4222,"
        "nats://n4ts-Third@nats-3:4222"
    ),
}


def test_a_password_with_a_slash_comma_hash_or_question_mark_is_still_hidden() -> None:
    table = hubbub(AWKWARD_PASSWORDS, "config")
    as_json = hubbub(AWKWARD_PASSWORDS, "config", "--json")

    for result in (table, as_json):
        assert result.exit_code == 0, result.output
        for word in ("sl4sh", "c0mma", "h4sh", "qu3ry", "n4ts"):
            assert word not in result.output
    shown = json.loads(as_json.stdout)["settings"]
    assert shown["relational_url"]["value"] == "postgresql+psycopg://app:***@db/h"
    assert shown["listening_db_url"]["value"] == "postgresql://app:***@db/h"
    assert shown["notifications_db_url"]["value"] == "postgresql://app:***@db/h"
    assert shown["redis_url"]["value"] == "redis://:***@redis:6379/0"
    # Each server of a NATS list stays visible, with its credentials hidden.
    assert shown["nats_url"]["value"] == (
        "nats://alice:***@nats-1:4222,nats://bob:***@nats-2:4222,nats://***@nats-3:4222"
    )
    assert "postgresql://app:***@db/h" in row(table.stdout, "HUBBUB_LISTENING_DB_URL")


def test_an_invalid_setting_names_its_variable_and_what_it_takes() -> None:
    result = hubbub({"HUBBUB_EVENT_LOG": "kafka", "HUBBUB_SMTP_PORT": "seventy"}, "config")

    assert result.exit_code == 2
    assert "HUBBUB_EVENT_LOG='kafka'" in result.output
    assert "'sqlite' or 'jetstream'" in result.output
    assert "HUBBUB_SMTP_PORT='seventy'" in result.output
    assert "valid integer" in result.output
    assert result.stdout == ""  # nothing a script could take for settings


def test_an_invalid_option_is_named_as_the_option() -> None:
    result = hubbub({"HUBBUB_EVENT_LOG": "sqlite"}, "--event-log", "kafka", "config")

    assert result.exit_code == 2
    assert "--event-log='kafka'" in result.output
    assert "HUBBUB_EVENT_LOG" not in result.output


def test_an_invalid_secret_is_named_but_not_shown() -> None:
    env = {"HUBBUB_NATS_URL": "nats://hub:n4ts-Pw@nats:4222", "HUBBUB_SMTP_PASSWORD": "x"}
    result = hubbub({**env, "HUBBUB_WEBHOOK_ALLOWED_NETWORKS": "10.0.0.0/33"}, "config")

    assert result.exit_code == 2
    assert "HUBBUB_WEBHOOK_ALLOWED_NETWORKS='10.0.0.0/33'" in result.output
    assert "n4ts-Pw" not in result.output


def test_a_misspelt_variable_is_reported_with_the_setting_it_resembles() -> None:
    env = {"HUBBUB_EVENTLOG": "jetstream", "HUBBUB_NOT_A_THING_AT_ALL": "1"}
    table = hubbub(env, "config")
    ignored = json.loads(hubbub(env, "config", "--json").stdout)["ignored"]

    assert table.exit_code == 0
    said = " ".join(table.stdout.split())
    assert "HUBBUB_EVENTLOG is not a setting: ignored (did you mean HUBBUB_EVENT_LOG?)" in said
    assert "HUBBUB_NOT_A_THING_AT_ALL is not a setting: ignored" in said
    assert {"variable": "HUBBUB_EVENTLOG", "did_you_mean": "HUBBUB_EVENT_LOG"} in ignored
    assert {"variable": "HUBBUB_NOT_A_THING_AT_ALL", "did_you_mean": None} in ignored
    assert "sqlite" in row(table.stdout, "HUBBUB_EVENT_LOG")  # the typo took no effect
