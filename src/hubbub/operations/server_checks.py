"""The doctor's checks of the servers the settings name: NATS JetStream (the event log),
Redis (cache and rate limits), the SMTP server (email) and the traces' collector.

Each asks the server what the platform will need of it (JetStream enabled, room for
the streams it makes; a Redis answering PING; an SMTP server taking the connection's
security and credentials) and nothing more: no stream is created, no key written, no
email sent.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Final

import aiosmtplib
import httpx
import nats
import nats.errors
import nats.js.errors
import redis.asyncio
import redis.exceptions
from nats.aio.client import Client as NATS
from nats.js.api import AccountInfo, StorageType, StreamInfo

from hubbub.kernel.telemetry import redact
from hubbub.operations.effective_settings import redact_url
from hubbub.operations.findings import Check, Finding, Limits, counted
from hubbub.settings import Settings

_NATS_FIX: Final = (
    "start nats-server with JetStream (-js) where HUBBUB_NATS_URL points, or fix the URL"
)


def plan(settings: Settings, limits: Limits) -> list[tuple[str, Check]]:
    checks: list[tuple[str, Check]] = []
    if settings.event_log == "jetstream":
        checks.append(("event log", functools.partial(jetstream, settings, limits)))
    checks.append(("cache", functools.partial(redis_server, settings, limits)))
    if settings.smtp_host:
        checks.append(("smtp", functools.partial(smtp, settings, limits)))
    if settings.otlp_endpoint:
        checks.append(("tracing", functools.partial(collector, settings.otlp_endpoint, limits)))
    return checks


# NATS JetStream


async def jetstream(settings: Settings, limits: Limits) -> list[Finding]:
    """NATS reachable, JetStream on, and the prefix's streams there or makeable."""
    url = settings.nats_url.get_secret_value()
    where = f"NATS at {redact_url(url)}"
    errors: list[Exception] = []

    async def remember(error: Exception) -> None:
        errors.append(error)

    nc = NATS()
    try:
        async with asyncio.timeout(limits.timeout_s):
            await nc.connect(
                [server.strip() for server in url.split(",")], name="hubbub-doctor",
                connect_timeout=max(1, round(limits.timeout_s)), allow_reconnect=False,
                error_cb=remember,
            )  # fmt: skip
    except TimeoutError:
        await nc.close()
        detail = f"{where}: no answer within {limits.timeout_s:g} s"
        return [Finding("event log", "fail", detail, _NATS_FIX)]
    except (nats.errors.Error, OSError) as error:
        cause = errors[-1] if errors else error
        detail = redact(f"{where}: cannot connect ({cause or type(cause).__name__})")
        return [Finding("event log", "fail", detail, _NATS_FIX)]
    try:
        return [await _jetstream_state(nc, settings, where, limits)]
    finally:
        await nc.close()


async def _jetstream_state(nc: NATS, settings: Settings, where: str, limits: Limits) -> Finding:
    js = nc.jetstream(timeout=limits.timeout_s)
    try:
        account = await js.account_info()
        streams = await js.streams_info()
    except (nats.errors.Error, nats.js.errors.Error) as error:
        detail = f"{where} answers, but JetStream does not ({error or type(error).__name__})"
        return Finding("event log", "fail", redact(detail), _NATS_FIX)
    prefix = f"{settings.stream_prefix}_"
    own = [s for s in streams if s.config.name and s.config.name.startswith(prefix)]
    if problems := _stream_problems(own, settings.nats_replicas):
        fix = "fix the streams with the nats CLI, or set HUBBUB_NATS_REPLICAS to what they have"
        return Finding("event log", "fail", f"{where}: {'; '.join(problems)}", fix)
    if not own:
        return _room_for_streams(account, where, prefix)
    detail = f"{where}: JetStream on, {counted(len(own), 'stream')} {prefix}*"
    return Finding("event log", "ok", detail)


def _stream_problems(streams: list[StreamInfo], replicas: int) -> list[str]:
    """What in the log's streams the platform would refuse at start."""
    problems = []
    for info in streams:
        if info.config.storage != StorageType.FILE:
            problems.append(f"stream {info.config.name} is in memory, not on file storage")
        if (info.config.num_replicas or 1) < replicas:
            have = info.config.num_replicas or 1
            problems.append(f"stream {info.config.name} has {have} replicas, not {replicas}")
    return problems


def _room_for_streams(account: AccountInfo, where: str, prefix: str) -> Finding:
    """No stream yet: they are made at first start, if the account has room for them."""
    limits = account.limits
    if limits.max_streams != -1 and account.streams >= limits.max_streams:
        detail = f"{where}: no {prefix}* streams, and the account may make no more"
        fix = "raise the account's max_streams, or remove streams it no longer needs"
        return Finding("event log", "fail", detail, fix)
    if limits.max_storage != -1 and account.storage >= limits.max_storage:
        detail = f"{where}: no {prefix}* streams, and the account's storage is full"
        return Finding("event log", "fail", detail, "raise the account's max_storage")
    detail = f"{where}: JetStream on; no {prefix}* streams yet (made at first start)"
    return Finding("event log", "ok", detail)


# Redis


async def redis_server(settings: Settings, limits: Limits) -> list[Finding]:
    """Redis answering, when the cache or the rate limiter is kept there."""
    users = [
        name
        for name, where in (("cache", settings.cache), ("rate limits", settings.rate_limiter))
        if where == "redis"
    ]
    if not users:
        return [Finding("cache", "ok", "cache and rate limits in each process (no Redis)")]
    url = settings.redis_url.get_secret_value()
    where = f"Redis at {redact_url(url)} ({' and '.join(users)})"
    client = redis.asyncio.Redis.from_url(
        url, socket_connect_timeout=max(1, round(limits.timeout_s)), socket_timeout=limits.timeout_s
    )
    try:
        await client.ping()
        version = (await client.info("server")).get("redis_version", "?")
    except (redis.exceptions.RedisError, OSError) as error:
        detail = redact(f"{where}: {error or type(error).__name__}")
        fix = "check that redis-server is up and HUBBUB_REDIS_URL (with its password) is right"
        return [Finding("cache", "fail", detail, fix)]
    finally:
        await client.aclose()
    return [Finding("cache", "ok", f"{where}: Redis {version} answers")]


# Email and traces


async def smtp(settings: Settings, limits: Limits) -> list[Finding]:
    """The SMTP server takes a connection with the settings' security and credentials."""
    assert settings.smtp_host is not None
    where = f"SMTP at {settings.smtp_host}:{settings.smtp_port} ({settings.smtp_security})"
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    client = aiosmtplib.SMTP(
        hostname=settings.smtp_host, port=settings.smtp_port, local_hostname="localhost",
        username=settings.smtp_username, password=password, timeout=limits.timeout_s,
        use_tls=settings.smtp_security == "ssl",
        start_tls=settings.smtp_security == "starttls",
        cert_bundle=str(settings.smtp_ca_file) if settings.smtp_ca_file else None,
    )  # fmt: skip
    try:
        async with client:
            await client.noop()
    except aiosmtplib.SMTPAuthenticationError as error:
        detail = f"{where}: the credentials were refused ({error.code} {error.message})"
        fix = "check HUBBUB_SMTP_USERNAME and HUBBUB_SMTP_PASSWORD"
        return [Finding("smtp", "fail", detail, fix)]
    except (aiosmtplib.SMTPException, OSError) as error:
        fix = "check HUBBUB_SMTP_HOST, HUBBUB_SMTP_PORT and HUBBUB_SMTP_SECURITY"
        return [Finding("smtp", "fail", f"{where}: {error or type(error).__name__}", fix)]
    signed_in = f", signed in as {settings.smtp_username}" if settings.smtp_username else ""
    return [Finding("smtp", "ok", f"{where}: answers{signed_in}")]


async def collector(endpoint: str, limits: Limits) -> list[Finding]:
    """The OTLP collector answers HTTP (a trace lost is only a warning)."""
    where = f"OTLP collector at {redact_url(endpoint)}"
    try:
        async with httpx.AsyncClient(timeout=limits.timeout_s) as client:
            await client.get(endpoint)
    except httpx.HTTPError as error:
        detail = f"{where}: no answer ({error or type(error).__name__}); traces are dropped"
        return [Finding("tracing", "warn", redact(detail), "check HUBBUB_OTLP_ENDPOINT")]
    return [Finding("tracing", "ok", f"{where} answers")]
