"""The composition root: the only place that turns settings into adapters and services.

Tests build the platform through these same functions with other settings.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING

import msgspec

from hubbub.analytics.archive import PostArchive
from hubbub.analytics.duckdb import DuckDBStaging, LiveDuckDB
from hubbub.analytics.ports import RollupStore, StagedRollups
from hubbub.eventlog import retention
from hubbub.eventlog.ports import EventLog
from hubbub.eventlog.retention import RetentionPolicy
from hubbub.eventlog.sqlite import SqliteEventLog
from hubbub.gateway.ports import TenantStore
from hubbub.ingest.mapping.base import SourceMapping
from hubbub.ingest.mapping.jetstream import JetstreamMapping
from hubbub.ingest.mapping.mastodon import MastodonMapping
from hubbub.ingest.ports import SOURCES, IngestState, TooManyIngestors
from hubbub.ingest.service import BatchSink, Ingestor
from hubbub.ingest.sqlite import SqliteIngestState
from hubbub.ingest.worker import ShardedIngestor, serve_worker
from hubbub.kernel.background import Background
from hubbub.kernel.breaker import Guard
from hubbub.kernel.cache import Cache, MemoryCache, RedisCache
from hubbub.kernel.clock import Clock, SystemClock
from hubbub.kernel.events import PAGES
from hubbub.kernel.redis_guard import redis_guard
from hubbub.kernel.sealing import SecretBox, key_file
from hubbub.kernel.signing import RequestSigner, secret_file
from hubbub.mentions import worker as mentions_worker
from hubbub.mentions.memory import MemoryMentions
from hubbub.mentions.ports import MentionsBackend
from hubbub.mentions.service import MentionsReplica
from hubbub.mentions.store import warm_up
from hubbub.settings import MentionsBackendName, Settings

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from hubbub.analytics.views import AlertViews
    from hubbub.gateway.app import Gateway
    from hubbub.gateway.service import People
    from hubbub.gateway.upstreams import Upstream
    from hubbub.kernel.ratelimit import RateLimiter
    from hubbub.listening.inbox import Inbox as ListeningInbox
    from hubbub.listening.ports import ListeningStore
    from hubbub.listening.service import Listening
    from hubbub.listening.worker import ListeningPolicy
    from hubbub.notifications.ports import Mailer, NotificationStore
    from hubbub.notifications.service import Inbox
    from hubbub.notifications.worker import NotificationPolicy
    from hubbub.publishing.budget import Budget
    from hubbub.publishing.logins import MastodonLogins
    from hubbub.publishing.ports import Network
    from hubbub.publishing.service import Publishing
    from hubbub.publishing.worker import PublishPolicy


class ConfigurationError(ValueError):
    """A setting names something that does not exist; the message says what does."""


def retention_policy(settings: Settings) -> RetentionPolicy:
    """What the log keeps of each topic, from the `HUBBUB_RETAIN_*` settings."""
    return retention.policy(
        firehose_days=settings.retain_firehose_days,
        firehose_bytes=settings.retain_firehose_bytes,
        usage_days=settings.retain_usage_days,
        deadletter_days=settings.retain_deadletter_days,
        deliveries_days=settings.retain_deliveries_days,
        alerts_days=settings.retain_alerts_days,
        publishing_days=settings.retain_publishing_days,
        pages_bytes=settings.retain_pages_bytes,
    )


async def open_event_log(settings: Settings) -> EventLog:
    """The event log the settings name, connected and ready."""
    if settings.event_log == "sqlite":
        return SqliteEventLog(
            settings.log_path,
            segment_size=settings.log_segment_size,
            retention=retention_policy(settings),
            retention_interval_s=settings.retention_interval_s,
        )
    from hubbub.eventlog.jetstream import JetStreamEventLog

    return await JetStreamEventLog.connect(
        settings.nats_url.get_secret_value(),
        stream_prefix=settings.stream_prefix,
        events_per_message=settings.events_per_message,
        dedupe_window=settings.dedupe_window,
        replicas=settings.nats_replicas,
        retention=retention_policy(settings),
    )


def mapping_for(
    source: str, settings: Settings, clock: Clock, *, instance: str = "mastodon"
) -> SourceMapping[object]:
    if source == "jetstream":
        return JetstreamMapping(clock, settings.max_event_bytes)  # type: ignore[return-value]
    if source == "mastodon":
        mapping = MastodonMapping(clock, settings.max_event_bytes, instance)
        return mapping  # type: ignore[return-value]
    raise ConfigurationError(f"unknown source {source!r}: use {', '.join(SOURCES)}")


async def open_mentions_backend(name: MentionsBackendName, settings: Settings) -> MentionsBackend:
    """The mentions backend `name`: the memory one from its snapshot (if any), the
    postgres one connected to `mentions_postgres_url`."""
    if name == "memory":
        warm_up()  # compile the kernels now, not on the first query
        return MemoryMentions.load(settings.mentions_snapshot_path)
    from hubbub.mentions.postgres import PostgresMentions

    return await PostgresMentions.connect(settings.mentions_postgres_url.get_secret_value())


def open_rollups(settings: Settings, clock: Clock) -> RollupStore:
    """The live rollups the settings name (DuckDB allows one process to open its file);
    either follows a rebuild swapped in while it is open."""
    if settings.analytics_store == "postgres":
        from hubbub.analytics.postgres import PostgresRollups

        return PostgresRollups(settings.analytics_postgres_url.get_secret_value())
    return LiveDuckDB(
        settings.data_dir,
        clock,
        settings.analytics_memory_limit,
        threads=settings.analytics_threads or None,
    )


def open_staged_rollups(settings: Settings) -> StagedRollups:
    """Fresh, empty rollups beside the live ones, for a rebuild to fill and promote."""
    if settings.analytics_store == "postgres":
        from hubbub.analytics.postgres import PostgresStaging

        return PostgresStaging(settings.analytics_postgres_url.get_secret_value())
    return DuckDBStaging(settings.data_dir)


def open_ingest_state(settings: Settings, clock: Clock) -> IngestState:
    """The ingest service's refs and cursors, in its own SQLite file in the data dir."""
    return SqliteIngestState(
        settings.ingest_state_path,
        ref_ttl_s=settings.ingest_ref_days * retention.DAY_S,
        clock=clock,
    )


def open_tenant_store(settings: Settings, clock: Clock) -> TenantStore:
    """Tenants, users and keys: SQLite in the data dir, or the database the URL names."""
    from hubbub.gateway.sql import SqlTenantStore

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqlTenantStore(settings.relational, clock)


def open_secret_box(settings: Settings) -> SecretBox:
    """What seals and opens secrets at rest: the configured key, or the data dir's."""
    if settings.secret_key is not None:
        return SecretBox(settings.secret_key.get_secret_value().encode())
    return SecretBox(key_file(settings.data_dir / "secret.key"))


def open_rate_limiter(settings: Settings, clock: Clock) -> RateLimiter:
    """Rate-limit counters: in this process, or in Redis, shared by every gateway."""
    from hubbub.kernel.ratelimit import MemoryRateLimiter, RedisRateLimiter

    if settings.rate_limiter == "redis":
        prefix = f"{settings.stream_prefix}:ratelimit"
        return RedisRateLimiter(
            settings.redis_url.get_secret_value(),
            prefix,
            clock=clock,
            guard=open_redis_guard(settings),
        )
    return MemoryRateLimiter(clock)


def open_cache(settings: Settings) -> Cache:
    """The cache the settings name; Redis keys are prefixed by the stream prefix."""
    if settings.cache == "redis":
        return RedisCache(
            settings.redis_url.get_secret_value(),
            settings.stream_prefix,
            guard=open_redis_guard(settings),
        )
    return MemoryCache()


def open_redis_guard(settings: Settings) -> Guard:
    """One user's guard on Redis: its timeout and circuit breaker, from the settings."""
    return redis_guard(
        "redis",
        settings.redis_timeout_s,
        settings.redis_breaker_failures,
        settings.redis_breaker_reset_s,
    )


def internal_secret(settings: Settings) -> bytes:
    """The deployment's internal secret: the configured one, or the data dir's."""
    if settings.internal_secret is not None:
        return settings.internal_secret.get_secret_value().encode()
    return secret_file(settings.data_dir / "internal.key")


def open_request_signer(settings: Settings) -> RequestSigner:
    """What signs the gateway's requests to the roles and checks them there."""
    return RequestSigner(internal_secret(settings), settings.signature_ttl_s)


def open_people(settings: Settings, store: TenantStore, clock: Clock) -> People:
    """Sign-in, sessions and invitations, with session tokens signed by a key derived
    from the internal secret (any gateway replica checks them)."""
    from hubbub.gateway.service import OperatorSessions, People
    from hubbub.gateway.sessions import SessionSigner

    secret = internal_secret(settings)
    signer = SessionSigner(secret, settings.session_days * retention.DAY_S)
    operator = None
    if settings.admin_token is not None:
        token = settings.admin_token.get_secret_value().encode()
        ttl_s = settings.operator_session_hours * 3600
        operator = OperatorSessions(token, SessionSigner(secret + b"\0operator\0" + token, ttl_s))
    return People(store, signer, clock, settings.invite_days * retention.DAY_S, operator)


def gateway_upstreams(settings: Settings, clock: Clock) -> dict[str, Upstream]:
    """The services behind the gateway, and the legacy application when one is set.
    Requests to the platform's roles are signed; the legacy application's are not."""
    from hubbub.gateway.upstreams import CircuitBreaker, Upstream

    signer = open_request_signer(settings)

    places = {
        "ingest": (settings.ingest_url, settings.ingest_timeout_s),
        "mentions": (settings.mentions_url, settings.mentions_timeout_s),
        "analytics": (settings.analytics_url, settings.analytics_timeout_s),
        "publishing": (settings.publishing_url, settings.publishing_timeout_s),
        "notifications": (settings.notifications_url, settings.notifications_timeout_s),
        "listening": (settings.listening_url, settings.listening_timeout_s),
    }
    if settings.legacy_url:
        places["legacy"] = (settings.legacy_url, settings.legacy_timeout_s)
    places["web"] = (settings.web_url, settings.analytics_timeout_s)
    return {
        name: Upstream(
            name,
            url,
            timeout,
            CircuitBreaker(settings.breaker_failures, settings.breaker_reset_s, clock),
            signer if name not in ("legacy", "web") else None,
        )
        for name, (url, timeout) in places.items()
    }


async def build_gateway(settings: Settings, clock: Clock) -> Gateway:
    """The gateway the settings describe, started: route table and flags read, the
    upstreams checked once, and all of it kept current in the background. Every part of
    it reads time from `clock`."""
    from hubbub.gateway.app import Gateway
    from hubbub.gateway.auth import Authenticator
    from hubbub.gateway.flags import FlagBook
    from hubbub.gateway.health import Health
    from hubbub.gateway.progress import Progress
    from hubbub.gateway.routing import RouteTable
    from hubbub.gateway.usage import UsageRecorder
    from hubbub.kernel.ratelimit import Quota, shared_servers

    event_log = await open_event_log(settings)
    store = open_tenant_store(settings, clock)
    admin = settings.admin_token.get_secret_value() if settings.admin_token else None
    upstreams = gateway_upstreams(settings, clock)
    limiter = open_rate_limiter(settings, clock)
    people = open_people(settings, store, clock)
    health = Health(upstreams, dependencies=shared_servers(limiter), clock=clock)
    gateway = Gateway(
        store=store,
        event_log=event_log,
        auth=Authenticator(
            store, admin, settings.key_cache_ttl_s, clock=clock, sessions=people.caller
        ),
        limiter=limiter,
        key_quota=Quota(settings.rate_limit_key_per_s, settings.rate_limit_key_burst, "key"),
        tenant_quota=Quota(
            settings.rate_limit_tenant_per_s, settings.rate_limit_tenant_burst, "tenant"
        ),
        upstreams=upstreams,
        routes=RouteTable(event_log),
        flags=FlagBook(event_log),
        health=health,
        progress=Progress(event_log, health, clock=clock),
        usage=UsageRecorder(event_log, clock=clock),
        clock=clock,
        people=people,
        secret_box=open_secret_box(settings),
        signin_quota=Quota(
            settings.signin_attempts_per_minute / 60,
            max(1, int(settings.signin_attempts_per_minute)),
            "sign-in attempts",
        ),
        control_poll_s=settings.control_poll_s,
        max_body_bytes=settings.max_body_bytes,
        max_push_bytes=settings.max_push_bytes,
        max_media_bytes=settings.max_media_bytes,
    )
    await gateway.start()
    return gateway


def gateway_url_for_web(settings: Settings) -> str:
    """Where the web app asks the platform's API: the gateway, on loopback by default."""
    return settings.gateway_url or f"http://127.0.0.1:{settings.http_port}"


@dataclass
class PublishingParts:
    """Publishing as the settings describe it: its use cases, the networks it publishes
    to, the publisher's policy, and what closes them."""

    service: Publishing
    networks: dict[str, Network]
    policy: PublishPolicy
    close: Callable[[], Awaitable[None]]
    budget: Budget | None = None
    """Each account's budget on its network, shared by every publisher the rate limiter
    is shared by (`HUBBUB_RATE_LIMITER`: in this process, or in Redis)."""


def open_publishing(
    settings: Settings, clock: Clock, event_log: EventLog | None
) -> PublishingParts:
    """Publishing over the relational store, the networks' APIs (guarded to public
    addresses unless `HUBBUB_PUBLISH_ALLOWED_NETWORKS` says), the mentions role for the
    dids of handles, the log for each job's changes, and each account's budget in the
    rate limiter the settings name (Redis at scale, so every replica spends from one)."""
    from hubbub.publishing.best_times import AnalyticsBestTimes
    from hubbub.publishing.bluesky import BlueskyNetwork
    from hubbub.publishing.budget import Budget
    from hubbub.publishing.directory import pages_through
    from hubbub.publishing.journal import Journal
    from hubbub.publishing.mastodon import MastodonNetwork
    from hubbub.publishing.mentions import MentionsDids
    from hubbub.publishing.ports import Limits, NetworkName
    from hubbub.publishing.service import BLUESKY_LIMITS, Publishing
    from hubbub.publishing.sql import SqlJobStore
    from hubbub.publishing.worker import PublishPolicy

    box = open_secret_box(settings)
    store = SqlJobStore(settings.relational)
    dids = MentionsDids(settings.mentions_url, open_request_signer(settings))
    best = AnalyticsBestTimes(
        settings.analytics_url, open_request_signer(settings), settings.analytics_timeout_s
    )
    allowed = settings.publish_allowed_networks
    mastodon = MastodonNetwork(box, clock, allowed, media_data=store.media_data)
    bluesky = BlueskyNetwork(box, dids.did_of, allowed, media_data=store.media_data)

    async def limits_of(network: NetworkName, service: str) -> Limits:
        return BLUESKY_LIMITS if network == "bluesky" else await mastodon.limits(service)

    limiter = open_rate_limiter(settings, clock)

    async def close() -> None:
        for closing in (mastodon.close, bluesky.close, dids.close, limiter.close, best.close):
            await closing()
        await asyncio.to_thread(store.close)

    journal = Journal(event_log, clock)
    networks: dict[str, Network] = {"bluesky": bluesky, "mastodon": mastodon}
    horizon_s = settings.publish_series_horizon_days * retention.DAY_S
    policy = PublishPolicy(
        lease_s=settings.publish_lease_s, max_late_s=settings.publish_max_late_s,
        keep_finished_s=settings.publish_keep_days * retention.DAY_S,
        series_horizon_s=horizon_s,
        remind_after_s=settings.publish_remind_after_hours * 3600,
        overdue_within_s=settings.publish_overdue_within_hours * 3600,
    )  # fmt: skip
    service = Publishing(
        store, box, clock, limits_of, allowed, journal, settings.publish_require_alt,
        drafts_per_author=settings.publish_drafts_per_author,
        draft_bytes=settings.publish_draft_bytes, series_horizon_s=horizon_s,
        best_times=best, best_count=settings.publish_best_slots,
        page_of=pages_through(networks),
    )  # fmt: skip
    budget = Budget(limiter, burst_share=settings.publish_budget_burst_share)
    return PublishingParts(service, networks, policy, close, budget)


def open_notification_store(settings: Settings) -> NotificationStore:
    """People's notifications: SQLite in the data dir, or the database the URL names."""
    from hubbub.notifications.sql import SqlNotificationStore

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqlNotificationStore(settings.notifications_db)


def open_listening_store(settings: Settings) -> ListeningStore:
    """Saved searches and their matches: SQLite in the data dir, or the database the URL
    names."""
    from hubbub.listening.sql import SqlListeningStore

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqlListeningStore(settings.listening_db)


def listening_policy(settings: Settings) -> ListeningPolicy:
    """How the listening worker runs."""
    from hubbub.listening.worker import ListeningPolicy

    return ListeningPolicy(
        batch=settings.listening_batch, interval_s=settings.listening_interval_s,
        keep_per_search=settings.listening_keep_per_search,
        keep_s=settings.listening_keep_days * retention.DAY_S,
    )  # fmt: skip


def open_listening(settings: Settings, event_log: EventLog, clock: Clock) -> Listening:
    """Listening's use cases over its store, resolving handles through mentions."""
    from hubbub.listening.pages import MentionsPages
    from hubbub.listening.service import Listening, ListeningLimits

    limits = ListeningLimits(
        max_searches=settings.listening_max_searches, max_terms=settings.listening_max_terms,
        test_max_posts=settings.listening_test_max_posts,
        keep_per_search=settings.listening_keep_per_search,
    )  # fmt: skip
    from hubbub.listening.live import LiveTail

    pages = MentionsPages(settings.mentions_url, open_request_signer(settings))
    live = LiveTail(event_log, poll_s=settings.listening_live_poll_s)
    return Listening(open_listening_store(settings), event_log, pages, clock, limits, live)


def open_mailer(settings: Settings) -> Mailer | None:
    """The SMTP server notifications are emailed through; None (email off) without one."""
    if not settings.smtp_host:
        return None
    from hubbub.notifications.smtp import SmtpMailer

    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    return SmtpMailer(
        settings.smtp_host, settings.smtp_port, settings.smtp_from, settings.smtp_security,
        settings.smtp_username, password, settings.smtp_timeout_s,
        str(settings.smtp_ca_file) if settings.smtp_ca_file else None,
    )  # fmt: skip


def notification_policy(settings: Settings) -> NotificationPolicy:
    """How the notifications worker runs, and writes emails when there is a mailer."""
    from hubbub.notifications.service import EmailPolicy
    from hubbub.notifications.worker import NotificationPolicy

    email = EmailPolicy(settings.smtp_from, settings.public_url) if settings.smtp_host else None
    return NotificationPolicy(
        email=email, keep_per_user=settings.notifications_per_user,
        keep_read_s=settings.notifications_keep_read_days * retention.DAY_S,
        email_attempts=settings.email_attempts, email_backoff_s=settings.email_backoff_s,
    )  # fmt: skip


def build_web(settings: Settings) -> tuple[ASGIApp, Callable[[], Awaitable[None]]]:
    """The web app's pages, asking the gateway's API; and what closes its client."""
    from hubbub.ui.api import create_app
    from hubbub.ui.http import GatewayApi
    from hubbub.ui.notifications import GatewayStreams

    api = GatewayApi(gateway_url_for_web(settings))
    streams = GatewayStreams(gateway_url_for_web(settings), 2 * settings.notifications_timeout_s)
    app = create_app(
        api, internal_secret(settings), clock=SystemClock(),
        session_max_age_s=int(settings.session_days * retention.DAY_S),
        operator_max_age_s=int(settings.operator_session_hours * 3600),
        person_ttl_s=settings.key_cache_ttl_s, streams=streams,
    )  # fmt: skip

    async def close() -> None:
        await api.close()
        await streams.close()

    return app, close


def open_archive(settings: Settings) -> PostArchive:
    return PostArchive(settings.archive_path)


@dataclass
class Platform:
    """The adapters one process shares between its services."""

    settings: Settings
    event_log: EventLog
    ingest_state: IngestState
    clock: Clock
    ingestors: dict[tuple[str, str], BatchSink] = field(default_factory=dict)
    _making: asyncio.Lock = field(default_factory=asyncio.Lock)
    _starting_mentions: asyncio.Lock = field(default_factory=asyncio.Lock)
    keeps_snapshots: bool = True
    """Whether this process writes the mentions snapshot (one of several replicas does)."""
    _mentions: MentionsReplica | None = None
    _analytics: RollupStore | None = None
    _alert_views: AlertViews | None = None
    _cache: Cache | None = None
    _secret_box: SecretBox | None = None
    _publishing: Publishing | None = None
    _mastodon_logins: MastodonLogins | None = None
    _inbox: Inbox | None = None
    _listening: Listening | None = None
    _listening_inbox: ListeningInbox | None = None
    _closing: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    background: Background = field(init=False)
    """Its long-running tasks, restarted when they fail; health reports them."""

    def __post_init__(self) -> None:
        self.background = Background(clock=self.clock)

    async def mentions(self) -> MentionsReplica:
        """This process's mentions replica: started (caught up) on first use, then kept up
        by its worker in the background, and snapshotted now and then and at close."""
        if self._mentions is not None:
            return self._mentions
        async with self._starting_mentions:
            if self._mentions is None:
                settings = self.settings
                replica = MentionsReplica(
                    self.event_log,
                    lambda name: open_mentions_backend(name, settings),
                    serving=settings.mentions_backend,
                    shadow=settings.mentions_shadow,
                )
                await replica.start()
                mentions_worker.run(
                    self.background,
                    replica,
                    snapshots=settings.mentions_snapshot_path if self.keeps_snapshots else None,
                    snapshot_every_s=settings.mentions_snapshot_interval_s,
                )
                self._mentions = replica
        return self._mentions

    async def analytics(self) -> RollupStore:
        """The rollups, owned by this process: opened on first use, then kept up with the
        log by the analytics worker in the background (DuckDB allows one writer)."""
        if self._analytics is None:
            from hubbub.analytics import worker
            from hubbub.analytics.views import AlertViews

            settings = self.settings
            store = self._analytics = open_rollups(settings, self.clock)
            views = self._alert_views = AlertViews.open(self.event_log, settings)
            worker.run(
                self.background,
                store=store,
                archive=open_archive(settings),
                views=views,
                event_log=self.event_log,
                settings=settings,
                box=self.secret_box(),
                clock=self.clock,
            )
        return self._analytics

    async def alert_views(self) -> AlertViews:
        """The watches, webhooks, last alerts and deliveries of the analytics role, folded
        from the log and kept up in the background (started with the role's workers)."""
        await self.analytics()
        assert self._alert_views is not None  # made with the analytics workers
        return self._alert_views

    async def positions(self, *, mentions: bool, analytics: bool) -> dict[str, int]:
        """The last log position folded, per topic, by the followers asked for that this
        process has started (mentions: `pages`; analytics: posts, engagement, deletes);
        none is started by asking."""
        found: dict[str, int] = {}
        replica = self._mentions
        if mentions and replica is not None and replica.serving in replica.backends:
            found[PAGES] = await replica.backends[replica.serving].position()
        if analytics and self._analytics is not None:
            found.update(await asyncio.to_thread(self._analytics.positions))
        if self._inbox is not None:
            found.update(await asyncio.to_thread(self._inbox.store.positions))
        if self._listening is not None:
            for topic, position in (
                await asyncio.to_thread(self._listening.store.positions)
            ).items():
                found.setdefault(topic, position)
        return found

    async def listening(self) -> Listening:
        """Listening's use cases, and (on first use) the matcher, the fold and retention
        in the background."""
        if self._listening is None:
            from hubbub.listening import worker as listening_worker

            listening = open_listening(self.settings, self.event_log, self.clock)
            self._closing.append(lambda: asyncio.to_thread(listening.store.close))
            self._closing.append(listening.pages.close)
            self._closing.append(listening.live.close)
            listening_worker.run(
                self.background, store=listening.store, event_log=self.event_log,
                policy=listening_policy(self.settings), clock=self.clock,
            )  # fmt: skip
            self._listening = listening
        return self._listening

    async def listening_inbox(self) -> ListeningInbox:
        """The tenants' inboxes, over listening's store (its matcher and fold started),
        answering through publishing's API."""
        if self._listening_inbox is None:
            from hubbub.listening.inbox import Inbox, PublishingReplies
            from hubbub.listening.inbox_sql import SqlInbox
            from hubbub.listening.sql import SqlListeningStore

            listening = await self.listening()
            store = listening.store
            assert isinstance(store, SqlListeningStore)
            replies = PublishingReplies(
                self.settings.publishing_url, open_request_signer(self.settings),
                self.settings.publishing_timeout_s,
            )  # fmt: skip
            self._closing.append(replies.close)
            self._listening_inbox = Inbox(
                SqlInbox(store.engine), self.event_log, self.clock, replies, listening.live
            )
        return self._listening_inbox

    async def listening_unready(self) -> str | None:
        """Why this process cannot serve listening (its store does not answer, or its
        worker keeps failing); None when it can."""
        listening = await self.listening()
        try:
            await asyncio.to_thread(listening.store.positions)
        except Exception as error:
            return f"listening's store does not answer: {error}"
        failing = self.background.failing()
        for task in ("listening-matcher", "listening-fold"):
            if task in failing:
                return f"the listening worker keeps failing: {failing[task]}"
        return None

    async def notifications(self) -> Inbox:
        """People's notifications, and (on first use) the worker folding notices into
        them and emailing them, in the background."""
        if self._inbox is None:
            from hubbub.notifications import worker as notifications_worker
            from hubbub.notifications.service import Inbox, StreamPolicy

            settings = self.settings
            store = open_notification_store(settings)
            self._closing.append(lambda: asyncio.to_thread(store.close))
            stream = StreamPolicy(
                settings.notifications_stream_s, settings.notifications_heartbeat_s,
                settings.notifications_poll_s,
            )  # fmt: skip
            inbox = Inbox(store, self.clock, stream=stream)
            notifications_worker.run(
                self.background, store=store, event_log=self.event_log,
                mailer=open_mailer(settings), policy=notification_policy(settings),
                clock=self.clock, arrivals=inbox.arrivals,
            )  # fmt: skip
            self._inbox = inbox
        return self._inbox

    async def notifications_unready(self) -> str | None:
        """Why this process cannot serve notifications (its store does not answer, or
        its worker keeps failing); None when it can."""
        inbox = await self.notifications()
        try:
            await asyncio.to_thread(inbox.store.positions)
        except Exception as error:
            return f"the notifications' store does not answer: {error}"
        failing = self.background.failing()
        if "notifications" in failing:
            return f"the notifications worker keeps failing: {failing['notifications']}"
        return None

    async def publishing(self) -> Publishing:
        """Publishing's use cases over the relational store, and (on first use) the
        publisher claiming due jobs and its sweeper, in the background."""
        if self._publishing is None:
            from hubbub.publishing import worker as publishing_worker

            parts = open_publishing(self.settings, self.clock, self.event_log)
            self._closing.append(parts.close)
            publisher = publishing_worker.Publisher(
                parts.service.store, parts.networks, self.clock, parts.policy,
                journal=parts.service.journal, budget=parts.budget,
            )  # fmt: skip
            publishing_worker.run(self.background, publisher, parts.service)
            from hubbub.publishing.logins import MastodonLogins
            from hubbub.publishing.mastodon import MastodonNetwork

            mastodon = parts.networks["mastodon"]
            assert isinstance(mastodon, MastodonNetwork)
            self._mastodon_logins = MastodonLogins(parts.service, mastodon, self.clock)
            self._publishing = parts.service
        return self._publishing

    async def mastodon_logins(self) -> MastodonLogins:
        """Mastodon accounts connected by their owner's approval (OAuth)."""
        await self.publishing()
        assert self._mastodon_logins is not None
        return self._mastodon_logins

    async def publishing_unready(self) -> str | None:
        """Why no publisher here can claim work (its store does not answer, or its loop
        keeps failing); None when one can."""
        publishing = await self.publishing()
        try:
            await asyncio.to_thread(publishing.store.jobs, "", 1)
        except Exception as error:
            return f"the relational store does not answer: {error}"
        failing = self.background.failing()
        if "publisher" in failing:
            return f"the publisher keeps failing: {failing['publisher']}"
        return None

    def secret_box(self) -> SecretBox:
        """What seals secrets before they are written and opens them where used."""
        if self._secret_box is None:
            self._secret_box = open_secret_box(self.settings)
        return self._secret_box

    def cache(self) -> Cache:
        """The cache the settings name, made on first use."""
        if self._cache is None:
            self._cache = open_cache(self.settings)
        return self._cache

    async def ingestor(
        self, source: str, *, instance: str = "mastodon", workers: int | None = None
    ) -> BatchSink:
        """The started ingestor of a source (and Mastodon instance), made on first use.

        With more than one worker (`ingest_workers`), Jetstream runs sharded across
        processes; Mastodon always runs in this process (its deletes name a status by
        its id alone, so its lines cannot be split by account). Status ids are unique
        only on their instance, so each instance has an ingestor of its own.
        """
        key = (source, instance if source == "mastodon" else "")
        async with self._making:  # two first requests at once must not make two
            if key not in self.ingestors:
                if len(self.ingestors) >= self.settings.max_ingestors:
                    raise TooManyIngestors(
                        f"{len(self.ingestors)} ingestors are live, the most allowed"
                        " (HUBBUB_MAX_INGESTORS)"
                    )
                sink = self._make_ingestor(
                    source, instance, workers or self.settings.ingest_workers
                )
                await sink.start()
                self.ingestors[key] = sink
        return self.ingestors[key]

    def _make_ingestor(self, source: str, instance: str, workers: int) -> BatchSink:
        if workers > 1 and source == "jetstream":
            return ShardedIngestor(
                self.settings,
                source,
                workers=workers,
                instance=instance,
                main=ingest_worker_main,
                clock=self.clock,
            )
        mapping = mapping_for(source, self.settings, self.clock, instance=instance)
        return Ingestor(
            mapping,
            self.event_log,
            self.ingest_state,
            self.clock,
            queue_batches=self.settings.queue_batches,
        )

    async def close(self) -> None:
        """Stop every ingestor (finishing what was submitted), then close the adapters."""
        await self.background.close()
        for close in self._closing:
            await close()
        if self._analytics is not None:
            self._analytics.close()
        if self._cache is not None:
            await self._cache.close()
        if self._mentions is not None:
            if self.keeps_snapshots:
                self._mentions.save(self.settings.mentions_snapshot_path)
            await self._mentions.close()
        try:
            for ingestor in self.ingestors.values():
                await ingestor.stop()
        finally:
            try:
                await self.ingest_state.close()
            finally:
                await self.event_log.close()


def ingest_worker_main(
    connection: Connection, settings_json: str, source: str, instance: str
) -> None:
    """Entry point of a sharded ingest worker process: the in-process pipeline of this
    platform's settings, fed what arrives on `connection` (`ShardedIngestor`)."""
    from hubbub.kernel.runtime import tune_for_throughput
    from hubbub.kernel.telemetry import configure_logging

    settings = Settings(**msgspec.json.decode(settings_json))
    configure_logging(settings.log_level, settings.log_format)
    tune_for_throughput()
    asyncio.run(serve_worker(connection, lambda: _worker_ingestor(settings, source, instance)))


async def _worker_ingestor(
    settings: Settings, source: str, instance: str
) -> tuple[BatchSink, Callable[[], Awaitable[None]]]:
    platform = await build_platform(settings)
    return await platform.ingestor(source, instance=instance, workers=1), platform.close


async def build_platform(settings: Settings | None = None, clock: Clock | None = None) -> Platform:
    settings = settings or Settings()
    clock = clock or SystemClock()
    return Platform(
        settings=settings,
        event_log=await open_event_log(settings),
        ingest_state=open_ingest_state(settings, clock),
        clock=clock,
    )
