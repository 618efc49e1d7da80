"""The settings a command runs with, each with where it came from, secrets hidden.

pydantic-settings reads `HUBBUB_*` environment variables (their names in any case) over
the defaults, and the `hubbub` options `--data-dir` and `--event-log` win over both;
nothing is read from a file. `hubbub config` shows the outcome, so an operator sees
what a typo or a stray variable did before a process starts with it, and can paste it
into a ticket: secrets (passwords, tokens, keys, the password of a URL) never appear.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import SecretStr, ValidationError

from hubbub.bootstrap import gateway_url_for_web
from hubbub.settings import Settings

Source = Literal["default", "environment", "option"]
PREFIX: Final = "HUBBUB_"
OPTIONS: Final = {"data_dir": "--data-dir", "event_log": "--event-log"}
"""The settings the `hubbub` command takes as options, before the command's name."""
HIDDEN: Final = "***"
SECRET_WORDS: Final = frozenset({"password", "passwd", "token", "secret", "key"})
"""A string setting whose name has one of these words (`admin_token`) is a secret."""
# `token=...`, `password=...` in a query string or a libpq connection string, where a
# value may be quoted (`password='a b'`).
_SECRET_PARAMETER: Final = re.compile(
    r"(?P<name>\b[A-Za-z_]*(?:password|passwd|pass|token|secret|key)=)"
    r"(?:'(?:[^'\\]|\\.)*'?|[^&\s]*)",
    re.IGNORECASE,
)
# A libpq connection string: `key=value` pairs, at least two (a key ending in `=` is none).
_CONNINFO: Final = re.compile(r"^\s*\w+\s*=\s*\S*(?:\s+\w+\s*=\s*\S*)+\s*$")
# The password of a URL: all from `scheme://user:` to the last `@`, as SQLAlchemy, libpq
# and redis-py may take `/`, `?`, `#`, `,` or `@` in it for part of the password.
_URL_PASSWORD: Final = re.compile(r"(?P<keep>[A-Za-z][A-Za-z0-9+.-]*://[^:/]*:).*@")
# The user name alone of a NATS URL is a token (`nats://s3cret@host`).
_URL_TOKEN: Final = re.compile(r"(?P<keep>(?<![\w+.-])(?:nats|tls|ws|wss)://)[^:]*@", re.I)
# A scheme: several comma-separated URLs (NATS servers) each start with one.
_SCHEME: Final = re.compile(r"^\s*[A-Za-z][A-Za-z0-9+.-]*://")

DERIVED: Final[dict[str, tuple[Callable[[Settings], str], str]]] = {
    "relational_url": (lambda s: s.relational, "SQLite in the data dir"),
    "listening_db_url": (lambda s: s.listening_db, "SQLite in the data dir"),
    "notifications_db_url": (lambda s: s.notifications_db, "SQLite in the data dir"),
    "archive_dir": (lambda s: str(s.archive_path), "in the data dir"),
    "gateway_url": (gateway_url_for_web, "the gateway on loopback"),
    "secret_key": (lambda s: f"key file {s.data_dir / 'secret.key'}", "made on first use"),
    "internal_secret": (
        lambda s: f"key file {s.data_dir / 'internal.key'}",
        "made on first use; every machine of a deployment needs the same",
    ),
}
"""Settings whose default is None and means something else: what, and why."""


@dataclass(frozen=True)
class EffectiveSetting:
    """One setting as a process would have it.

    `value` is JSON-able, with secrets hidden; `origin` names the variable or option it
    came from, or says what a default means."""

    name: str
    variable: str
    value: object
    source: Source
    origin: str


@dataclass(frozen=True)
class IgnoredVariable:
    """A `HUBBUB_*` variable that is no setting (pydantic-settings ignores it)."""

    variable: str
    did_you_mean: str | None


class InvalidSettings(ValueError):
    """Settings that do not validate: one line per problem, naming its variable."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid settings:\n" + "\n".join(f"  {p}" for p in problems))
        self.problems = problems


def variable_of(name: str) -> str:
    return f"{PREFIX}{name.upper()}"


def load(overrides: Mapping[str, Any]) -> Settings:
    """The settings from the environment and `overrides` (the options given); an
    `InvalidSettings` naming each variable or option that does not validate, with the
    value it had (hidden when it is a secret)."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        problems = []
        for found in error.errors():
            name = str(found["loc"][0]) if found["loc"] else ""
            where = OPTIONS[name] if name in overrides and name in OPTIONS else variable_of(name)
            given = found.get("input")
            if _is_secret(name) and isinstance(given, str):
                given = SecretStr(given)
            given = redacted(name, given)
            problems.append(f"{where}={given!r}: {found['msg']}")
        raise InvalidSettings(problems) from error


def describe(
    settings: Settings, overrides: Mapping[str, object], environ: Mapping[str, str]
) -> list[EffectiveSetting]:
    """Every setting's value (secrets hidden) and where it came from, in the order of
    `Settings`."""
    given = {key.upper(): key for key in environ}
    described = []
    for name, value in settings:
        variable = variable_of(name)
        source: Source
        if name in overrides and name in OPTIONS:
            source, origin = "option", OPTIONS[name]
            if variable in given:
                origin += f" (over {given[variable]})"
        elif variable in given:
            source, origin = "environment", given[variable]
        else:
            source, origin = "default", ""
        shown = redacted(name, value)
        if value is None and name in DERIVED:
            derive, meaning = DERIVED[name]
            shown, origin = redact_url(derive(settings)), meaning
        described.append(EffectiveSetting(name, variable, shown, source, origin))
    return described


def ignored_variables(environ: Mapping[str, str]) -> list[IgnoredVariable]:
    """The `HUBBUB_*` variables that name no setting: a typo takes no effect silently,
    so say so, with the setting it most looks like."""
    known = [variable_of(name) for name in Settings.model_fields]
    ignored = []
    for key in sorted(environ):
        upper = key.upper()
        if upper.startswith(PREFIX) and upper not in known:
            close = difflib.get_close_matches(upper, known, n=1, cutoff=0.8)
            ignored.append(IgnoredVariable(key, close[0] if close else None))
    return ignored


def redacted(name: str, value: object) -> object:
    """`value` as it may be shown: a secret hidden, only the password of a URL hidden
    (so the server it names stays visible), and anything else JSON-able."""
    if isinstance(value, SecretStr):
        secret = value.get_secret_value()
        return redact_url(secret) if "://" in secret or _CONNINFO.match(secret) else HIDDEN
    if isinstance(value, str) and SECRET_WORDS & set(name.lower().split("_")):
        return HIDDEN if value else value
    if isinstance(value, str):
        return redact_url(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list | tuple):
        return [redacted(name, item) for item in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)


def _is_secret(name: str) -> bool:
    field = Settings.model_fields.get(name)
    return field is not None and "SecretStr" in str(field.annotation)


def redact_url(text: str) -> str:
    """`text` (a URL, several comma-separated, or a libpq connection string) with its
    passwords, tokens and keys replaced by `***`.

    Text is taken for a list of URLs only when each of its comma-separated parts starts
    with a scheme: otherwise a comma is part of a password."""
    parts = text.split(",")
    if len(parts) > 1 and all(_SCHEME.match(part) for part in parts):
        text = ",".join(_redact_one(part) for part in parts)
    else:
        text = _redact_one(text)
    return _SECRET_PARAMETER.sub(lambda m: f"{m['name']}{HIDDEN}", text)


def _redact_one(url: str) -> str:
    """`url` with its password, or the token of a NATS URL, replaced by `***`: more
    than the password is hidden when `@` also comes later, never less."""
    hidden, found = _URL_PASSWORD.subn(lambda m: f"{m['keep']}{HIDDEN}@", url)
    if found:
        return hidden
    return _URL_TOKEN.sub(lambda m: f"{m['keep']}{HIDDEN}@", url)
