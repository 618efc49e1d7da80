"""One typed settings object, read from `HUBBUB_*` environment variables once at start.

Every tunable of the platform lives here, so operators change behaviour with settings,
never with code. Each setting that picks an adapter is a `Literal` of the names
`bootstrap` knows, checked when the settings are read: a typo fails at start with the
list of names that exist.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Final, Literal, get_args

from pydantic import Field, IPvAnyNetwork, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

EventLogName = Literal["sqlite", "jetstream"]
MentionsBackendName = Literal["memory", "postgres"]
RollupStoreName = Literal["duckdb", "postgres"]
RateLimiterName = Literal["memory", "redis"]
CacheName = Literal["memory", "redis"]
# For what checks a name that is not a setting (a command's option, a value in the log).
EVENT_LOG_ADAPTERS: Final[tuple[EventLogName, ...]] = get_args(EventLogName)
MENTIONS_BACKENDS: Final[tuple[MentionsBackendName, ...]] = get_args(MentionsBackendName)
MIB: Final = 1024 * 1024


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HUBBUB_", extra="ignore")

    data_dir: Path = Field(Path("data"), description="Where embedded adapters keep their state.")
    event_log: EventLogName = Field("sqlite", description="Event log adapter: sqlite or jetstream.")

    # Event log
    log_segment_size: int = Field(1000, ge=1, description="Events per SQLite segment row.")
    nats_url: SecretStr = Field(
        SecretStr("nats://127.0.0.1:4222"),
        description="NATS servers (a secret: may hold a password).",
    )
    stream_prefix: str = Field("hubbub", pattern=r"^[A-Za-z0-9_-]+$")
    nats_replicas: int = Field(1, ge=1, le=5, description="Replicas of every JetStream stream.")
    events_per_message: int = Field(1000, ge=1, description="Events packed per NATS message.")
    dedupe_window: int = Field(100_000, ge=1, description="Recent ids per topic kept by NATS.")
    # Retention (see hubbub.eventlog.retention): 0 means no limit of that kind. `control`
    # is compacted to the latest event per key; `pages` is kept whole (follower deltas).
    retain_firehose_days: float = Field(
        30.0, ge=0, description="Days posts, engagement and deletes stay in the log."
    )
    retain_firehose_bytes: int = Field(
        0, ge=0, description="Most bytes each firehose topic keeps; 0: no cap."
    )
    retain_usage_days: float = Field(90.0, ge=0, description="Days usage events stay.")
    retain_deadletter_days: float = Field(30.0, ge=0, description="Days rejected input stays.")
    retain_deliveries_days: float = Field(30.0, ge=0, description="Days webhook outcomes stay.")
    retain_alerts_days: float = Field(30.0, ge=0, description="Days raised alerts stay.")
    retain_publishing_days: float = Field(
        90.0, ge=0, description="Days the publishing topic (each publish job's changes) stays."
    )
    retain_pages_bytes: int = Field(
        0, ge=0, description="Most bytes `pages` keeps; 0: all (the mentions index needs it)."
    )
    retention_interval_s: float = Field(
        60.0, gt=0, description="How often the SQLite log deletes what retention expired."
    )
    ingest_ref_days: float = Field(
        90.0,
        ge=0,
        description="Days (at most; half at least) a like, repost or follow is"
        " remembered for its undo; 0: ever.",
    )

    # Ingest
    max_event_bytes: int = Field(MIB, ge=1024, description="Larger events are dead-lettered.")
    # A cap: live sources cut batches after batch_max_wait_s, so only a backlog (a replay,
    # a catch-up) fills them. Large batches halve the per-event cost of the log's work.
    batch_size: int = Field(50_000, ge=1, description="Most events decoded and appended together.")
    batch_max_wait_s: float = Field(0.2, gt=0, description="A partial batch waits this long.")
    ingest_workers: int = Field(
        1, ge=1, le=64, description="Processes sharing Jetstream ingest, split by account."
    )
    queue_batches: int = Field(4, ge=1, description="Batches in flight before sources wait.")
    jetstream_url: str = "wss://jetstream2.us-east.bsky.network/subscribe"
    jetstream_rewind_s: float = Field(
        2.0, ge=0, description="Resume this far before the saved cursor; dedupe drops overlap."
    )
    reconnect_max_backoff_s: float = Field(30.0, gt=0)
    mastodon_instances: str = Field(
        "",
        description="Comma-separated Mastodon hosts whose statuses may be pushed"
        " (`?instance=`); `push` is always allowed.",
    )
    max_ingestors: int = Field(
        16, ge=1, le=1024, description="Live ingestors (a source, or a Mastodon instance)."
    )

    # Mentions
    mentions_backend: MentionsBackendName = Field(
        "memory", description="Mentions backend that serves queries."
    )
    mentions_shadow: MentionsBackendName | None = Field(
        None, description="Mentions backend sent the same queries off the request path."
    )
    mentions_postgres_url: SecretStr = Field(
        SecretStr("postgresql://127.0.0.1:5432/hubbub"),
        description="Database of the postgres backend.",
    )
    mentions_snapshot_interval_s: float = Field(
        60.0, gt=0, description="How often a replica snapshots its in-memory index."
    )
    # Analytics
    analytics_store: RollupStoreName = Field(
        "duckdb", description="Rollup store: duckdb (a file in the data dir) or postgres."
    )
    analytics_memory_limit: str = Field(
        "1GB",
        pattern=r"^[0-9]+(\.[0-9]+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
        description="The most memory DuckDB's rollups keep (e.g. 512MB, 2GB); the rest spills"
        " to disk.",
    )
    analytics_threads: int = Field(
        1,
        ge=0,
        description="Threads DuckDB runs the rollups' statements on; 0 for one per core."
        " One leaves the other cores to the other roles on a shared machine; raise it"
        " where analytics has a host of its own.",
    )
    allocator_mmap_threshold_kib: int = Field(
        128,
        ge=0,
        description="On glibc, every memory block this large or larger is mapped on its own"
        " and given back when freed; 0 leaves glibc's threshold, which rises as blocks are"
        " freed and lets a role's memory creep (hubbub.kernel.allocator).",
    )
    allocator_trim_interval_s: float = Field(
        60.0,
        ge=0,
        description="On glibc, how often a role hands the allocator's free pages back to the"
        " system (malloc_trim); 0 never.",
    )
    analytics_fold_interval_s: float = Field(
        0.25,
        gt=0,
        le=60,
        description="How long the rollups' fold waits, once caught up, before it reads the"
        " log again: the floor of analytics' lag under a steady firehose.",
    )
    analytics_postgres_url: SecretStr = Field(
        SecretStr("postgresql://127.0.0.1:5432/hubbub"),
        description="Database of the postgres rollups.",
    )
    poison_retries: int = Field(
        3,
        ge=1,
        description="Times a rollup batch fails the same way before its unfoldable"
        " records are dead-lettered and the analytics worker goes on.",
    )
    tenant: str = Field("default", description="Tenant of commands until tenants are real.")
    rollup_minute_days: float = Field(
        35.0, ge=8, description="Days of minute rollups kept (spike checks need 8)."
    )
    rollup_hour_days: float = Field(
        0.0, ge=0, description="Days of hour rollups kept (series read them); 0: all."
    )
    rollup_day_days: float = Field(
        0.0, ge=0, description="Days of day, week and four-week rollups kept; 0: all."
    )
    rollup_compact_interval_s: float = Field(
        60.0, gt=0, description="How often the DuckDB rollups merge what was appended."
    )
    rollup_post_days: float = Field(
        35.0, ge=1, description="Days a post's deletes and edits still change the rollups."
    )
    best_time_weeks: int = Field(
        16, ge=1, le=104, description="Weeks of posts the best time to post is scored on."
    )
    best_time_min_posts: int = Field(
        20, ge=0, description="Own posts a channel needs before its own slots are used."
    )
    best_time_prior_posts: float = Field(
        10.0, ge=0, description="Posts' worth of the average a slot is shrunk towards."
    )
    archive_dir: Path | None = Field(None, description="Post archive root (DATA_DIR/archive).")
    archive_days: float = Field(30.0, ge=0, description="Days of raw posts archived; 0: all.")
    archive_flush_s: float = Field(60.0, gt=0, description="How often archive files are cut.")
    alert_check_interval_s: float = Field(30.0, gt=0, description="How often watches are checked.")
    spike_window_minutes: int = Field(60, ge=1, le=1440, description="The window judged.")
    spike_baseline_days: int = Field(7, ge=2, le=7, description="Same window, days before.")
    spike_min_volume: int = Field(20, ge=0, description="Fewer posts than this never alert.")
    spike_min_ratio: float = Field(1.5, ge=1, description="Times the usual level, at least.")
    spike_cooldown_minutes: int = Field(360, ge=0, description="Quiet time after an alert.")
    spike_statistic: Literal["mean", "robust"] = Field(
        "mean", description="mean + k·sigma, or median + k·MAD."
    )
    spike_sensitivity: Literal["high", "medium", "low"] = Field(
        "medium", description="Default sensitivity of watches."
    )
    view_read_limit: int = Field(
        10_000, ge=1, description="Most log records a read folds into a view before it answers."
    )
    # Alert webhooks
    webhook_allowed_networks: Annotated[list[IPvAnyNetwork], NoDecode] = Field(
        [],
        description="Networks webhooks may reach although not public (comma-separated CIDRs,"
        " e.g. 10.0.0.0/8,::1/128); others are refused.",
    )
    webhook_timeout_s: float = Field(10.0, gt=0, description="Longest wait on one webhook try.")
    publish_allowed_networks: Annotated[list[IPvAnyNetwork], NoDecode] = Field(
        [],
        description="Networks a channel's PDS or Mastodon instance may be on although not"
        " public (comma-separated CIDRs); others are refused.",
    )
    webhook_attempts: int = Field(5, ge=1, le=20, description="Tries of one delivery.")
    webhook_backoff_s: float = Field(
        0.5, gt=0, description="Wait before the second try; doubles at each try after."
    )
    webhook_concurrency: int = Field(16, ge=1, le=1000, description="Deliveries made at once.")
    webhook_queue_size: int = Field(
        1000, ge=1, description="Deliveries in flight before no more alerts are read."
    )
    webhook_deliveries_kept: int = Field(
        1000, ge=1, le=10_000, description="Newest deliveries per tenant the API can list."
    )
    watches_per_tenant: int = Field(500, ge=1, description="Most active watches of a tenant.")
    webhooks_per_tenant: int = Field(20, ge=1, description="Most active webhooks of a tenant.")
    # Secrets at rest
    secret_key: SecretStr | None = Field(
        None, description="Fernet key sealing secrets at rest; default: DATA_DIR/secret.key."
    )
    # Requests from the gateway to the roles
    internal_secret: SecretStr | None = Field(
        None,
        description="Secret the gateway signs requests to the roles with; every process of a"
        " deployment needs the same one. Default: DATA_DIR/internal.key.",
    )
    signature_ttl_s: float = Field(
        60.0, gt=0, description="How long a signed request from the gateway stays valid."
    )
    role_host: str = Field(
        "127.0.0.1",
        description="Where the internal roles listen (`hubbub serve`): loopback unless told"
        " otherwise, whatever address the gateway is published on.",
    )
    # Tenants, users, keys
    relational_url: SecretStr | None = Field(
        None,
        description="SQLAlchemy URL of the relational store (postgresql+psycopg://...);"
        " default: SQLite in the data dir.",
    )
    admin_token: SecretStr | None = Field(
        None, description="Operator token: manages tenants and platform flags over the API."
    )
    # Gateway
    ingest_url: str = Field("http://127.0.0.1:8081", description="Where the ingest role listens.")
    mentions_url: str = Field(
        "http://127.0.0.1:8082",
        description="Where the mentions role listens; the gateway's may name several"
        " replicas, separated by commas, which it balances between and fails over.",
    )
    analytics_url: str = Field(
        "http://127.0.0.1:8083", description="Where the analytics role listens."
    )
    web_url: str = Field("http://127.0.0.1:8084", description="Where the web app's role listens.")
    publishing_url: str = Field(
        "http://127.0.0.1:8085", description="Where the publishing role listens."
    )
    gateway_url: str | None = Field(
        None,
        description="Where the web app reaches the gateway's API"
        " (default: loopback, on the gateway's port).",
    )
    legacy_url: str | None = Field(None, description="The legacy application routes go to.")
    ingest_timeout_s: float = Field(30.0, gt=0, description="Longest wait on the ingest role.")
    mentions_timeout_s: float = Field(2.0, gt=0, description="Longest wait on the mentions role.")
    analytics_timeout_s: float = Field(
        10.0, gt=0, description="Longest wait on the analytics role."
    )
    legacy_timeout_s: float = Field(10.0, gt=0, description="Longest wait on the legacy app.")
    publishing_timeout_s: float = Field(
        20.0, gt=0, description="Longest wait on the publishing role (it asks the networks)."
    )
    publish_max_late_s: float = Field(
        3600.0, gt=0,
        description="A post due longer ago than this when it could be published (the platform"
        " was down) is marked missed, with the reason, rather than published late.",
    )  # fmt: skip
    publish_lease_s: float = Field(
        60.0, gt=0, description="How long a publisher holds a claimed job before another may."
    )
    publish_keep_days: float = Field(
        90.0, gt=0, description="How long finished publish jobs are kept."
    )
    publish_require_alt: bool = Field(
        False, description="Refuse a post with an image that has no alt text (accessibility)."
    )
    publish_drafts_per_author: int = Field(
        100, ge=1, description="The most drafts one person (or key) keeps; past it, a 409."
    )
    publish_draft_bytes: int = Field(
        256 * 1024, ge=1024, description="The largest draft kept, as JSON; past it, a 422."
    )
    publish_series_horizon_days: float = Field(
        7.0,
        gt=0,
        description="How far ahead a recurring post's jobs are made (and the first"
        " occurrence past it); the sweeper makes later ones as time passes.",
    )
    publish_best_slots: int = Field(
        10, ge=1, le=336,
        description="How many of the week's best half-hours a queue that takes its"
        " channel's best times to post has (read from analytics each day).",
    )  # fmt: skip
    publish_remind_after_hours: float = Field(
        24.0, gt=0, description="A review step waiting longer than this reminds its approvers."
    )
    publish_overdue_within_hours: float = Field(
        2.0, gt=0, description="A post not approved this long before its time is flagged."
    )
    publish_budget_burst_share: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="The part of a network's per-account limit that may go"
        " at once (a queue due at 9:00); the rest follows at the sustained rate.",
    )
    breaker_failures: int = Field(
        5, ge=1, description="Failures in a row that open an upstream's circuit."
    )
    breaker_reset_s: float = Field(
        5.0, gt=0, description="How long an open circuit waits before a trial request."
    )
    rate_limiter: RateLimiterName = Field("memory", description="memory or redis.")
    rate_limit_key_per_s: float = Field(50.0, gt=0, description="Requests a second per key.")
    rate_limit_key_burst: int = Field(200, ge=1, description="Requests a key may send at once.")
    rate_limit_tenant_per_s: float = Field(
        200.0, gt=0, description="Requests a second per tenant, all its keys together."
    )
    rate_limit_tenant_burst: int = Field(800, ge=1, description="A tenant's burst.")
    session_days: float = Field(
        14.0, gt=0, description="How long a person stays signed in to the web app."
    )
    invite_days: float = Field(7.0, gt=0, description="How long an invitation link is open.")
    operator_session_hours: float = Field(
        8.0, gt=0, description="How long the operator stays signed in to the web app."
    )
    signin_attempts_per_minute: float = Field(
        10.0, gt=0, description="Sign-in attempts a minute, per email and per client address."
    )
    key_cache_ttl_s: float = Field(
        5.0, ge=0, description="How long a checked API key is trusted before it is looked up."
    )
    control_poll_s: float = Field(
        0.5, gt=0, description="How often flags and routes are read from the log."
    )
    otlp_endpoint: str | None = Field(
        None, description="OTLP/HTTP collector traces are sent to (off when unset)."
    )
    # Cache
    cache: CacheName = Field("memory", description="memory or redis.")
    redis_url: SecretStr = Field(
        SecretStr("redis://127.0.0.1:6379/0"), description="Redis (a secret: may hold a password)."
    )
    redis_timeout_s: float = Field(
        0.25, gt=0, description="Longest wait on Redis before answering from the process."
    )
    redis_breaker_failures: int = Field(
        3, ge=1, description="Redis failures in a row that stop asking it for a while."
    )
    redis_breaker_reset_s: float = Field(
        5.0, gt=0, description="How long Redis is not asked after its circuit opens."
    )
    report_cache_ttl_s: float = Field(300.0, gt=0, description="Longest a cached report lives.")
    # Listening (saved searches matched against the firehose, live streams, the inbox)
    listening_url: str = Field(
        "http://127.0.0.1:8087", description="Where the listening role listens."
    )
    listening_timeout_s: float = Field(
        30.0, gt=0,
        description="Longest wait on the listening role (a live stream sends at least a"
        " heartbeat within it).",
    )  # fmt: skip
    listening_db_url: SecretStr | None = Field(
        None,
        description="SQLAlchemy URL of listening's store (postgresql+psycopg://...);"
        " default: SQLite in the data dir (listening.db).",
    )
    listening_max_searches: int = Field(
        100, ge=1, description="The most saved searches (streams) one workspace keeps."
    )
    listening_max_terms: int = Field(50, ge=1, description="The most terms one search may have.")
    listening_batch: int = Field(
        5000, ge=1, description="Posts the matcher reads and matches at a time."
    )
    listening_interval_s: float = Field(
        0.05, gt=0, description="How often the matcher looks for new posts when caught up."
    )
    listening_keep_per_search: int = Field(
        100_000, ge=1, description="The most stored matches a search keeps; the oldest go."
    )
    listening_keep_days: float = Field(
        30.0, gt=0, description="Days a stored match is kept (by its post's creation)."
    )
    listening_live_poll_s: float = Field(
        0.05, gt=0, description="How often the live streams' reader looks for new matches."
    )
    listening_heartbeat_s: float = Field(
        10.0, gt=0, description="A quiet live stream sends a comment this often."
    )
    listening_stream_s: float = Field(
        300.0, gt=0, description="How long a live stream lasts before the client reconnects."
    )
    listening_test_max_posts: int = Field(
        200_000, ge=1,
        description="The most recent posts `streams test` reads (of the last hour at most).",
    )  # fmt: skip
    # Notifications (the web app's inbox, live, and email)
    notifications_url: str = Field(
        "http://127.0.0.1:8086", description="Where the notifications role listens."
    )
    notifications_timeout_s: float = Field(
        30.0, gt=0,
        description="Longest wait on the notifications role (a live stream sends at least"
        " a heartbeat within it).",
    )  # fmt: skip
    notifications_db_url: SecretStr | None = Field(
        None,
        description="SQLAlchemy URL of the notifications' store (postgresql+psycopg://...);"
        " default: SQLite in the data dir (notifications.db).",
    )
    notifications_per_user: int = Field(
        500, ge=1, description="The most notifications one person keeps; the oldest go first."
    )
    notifications_keep_read_days: float = Field(
        30.0, gt=0, description="Days a read notification (and a sent email) is kept."
    )
    notifications_stream_s: float = Field(
        300.0, gt=0, description="How long a live stream lasts before the client reconnects."
    )
    notifications_heartbeat_s: float = Field(
        10.0, gt=0, description="A quiet live stream sends a comment this often."
    )
    notifications_poll_s: float = Field(
        1.0, gt=0, description="How often a live stream looks for what another replica kept."
    )
    public_url: str = Field(
        "http://127.0.0.1:8080",
        description="Where people reach the web app: links in emails start with it.",
    )
    smtp_host: str | None = Field(
        None, description="The SMTP server notifications are emailed through; unset: no email."
    )
    smtp_port: int = Field(587, ge=1, le=65535, description="The SMTP server's port.")
    smtp_security: Literal["none", "starttls", "ssl"] = Field(
        "starttls", description="starttls (upgrade, required), ssl (TLS at once) or none."
    )
    smtp_username: str | None = Field(None, description="Who signs in to the SMTP server.")
    smtp_password: SecretStr | None = Field(None, description="Its password.")
    smtp_from: str = Field("Hubbub <hubbub@localhost>", description="Who emails are from.")
    smtp_timeout_s: float = Field(10.0, gt=0, description="Longest wait on the SMTP server.")
    smtp_ca_file: Path | None = Field(
        None, description="CA certificates (PEM) trusted for the SMTP server besides the system's."
    )
    email_attempts: int = Field(
        5, ge=1, le=50, description="Tries of one email before it is kept as dead, with why."
    )
    email_backoff_s: float = Field(
        30.0, gt=0, description="Wait before an email's second try; doubles at each after."
    )
    # HTTP and operations
    max_push_bytes: int = Field(64 * MIB, ge=1024, description="Largest HTTP push body.")
    max_body_bytes: int = Field(
        MIB, ge=1024, description="Largest request body of any other endpoint."
    )
    max_media_bytes: int = Field(
        16 * MIB, ge=1024, description="Largest upload to /v1/media (an image)."
    )
    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=0, le=65535)
    supervisor_pid: int | None = Field(
        None, description="Set by `hubbub serve` for its roles: they stop if it is gone."
    )
    log_level: str = "info"
    log_format: Literal["json", "console"] | None = Field(
        None, description="json or console; by default console on a terminal, json elsewhere."
    )

    @field_validator("webhook_allowed_networks", "publish_allowed_networks", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def mastodon_instance_list(self) -> list[str]:
        return [host.strip().lower() for host in self.mastodon_instances.split(",") if host.strip()]

    @property
    def log_path(self) -> Path:
        return self.data_dir / "eventlog.db"

    @property
    def ingest_state_path(self) -> Path:
        return self.data_dir / "ingest.db"

    @property
    def mentions_snapshot_path(self) -> Path:
        return self.data_dir / "mentions"

    @property
    def relational(self) -> str:
        if self.relational_url is not None:
            return self.relational_url.get_secret_value()
        return f"sqlite:///{self.data_dir / 'relational.db'}"

    def revealed_json(self) -> str:
        """These settings as JSON with the secrets in the clear (`model_dump_json` masks
        them): for a child process of this one, never for a log."""
        dumped = self.model_dump(mode="json")
        for name, value in self:
            if isinstance(value, SecretStr):
                dumped[name] = value.get_secret_value()
        return json.dumps(dumped)

    @property
    def listening_db(self) -> str:
        if self.listening_db_url is not None:
            return self.listening_db_url.get_secret_value()
        return f"sqlite:///{self.data_dir / 'listening.db'}"

    @property
    def notifications_db(self) -> str:
        if self.notifications_db_url is not None:
            return self.notifications_db_url.get_secret_value()
        return f"sqlite:///{self.data_dir / 'notifications.db'}"

    @property
    def archive_path(self) -> Path:
        return self.archive_dir or self.data_dir / "archive"

    def rollup_horizons(self, now_minute: int) -> dict[str, int]:
        """The first minute each rollup tier keeps, and post records (`posts`); a tier
        kept for ever has none."""
        days = {
            "minute": self.rollup_minute_days,
            "hour": self.rollup_hour_days,
            "day": self.rollup_day_days,
            "week": self.rollup_day_days,
            "fourweek": self.rollup_day_days,
            "posts": self.rollup_post_days,
            "slots": self.best_time_weeks * 7 + 1,  # a day more: the last posts' engagement
        }
        return {tier: now_minute - int(n * 1440) for tier, n in days.items() if n}
