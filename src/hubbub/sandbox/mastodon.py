"""A Mastodon REST API sandbox, in memory, built to the official API documentation
(docs.joinmastodon.org) so that real clients, Mastodon.py among them, get the answers they
would get from a Mastodon 4.4 server.

It serves the part of the API that publishing uses:

    POST /api/v1/apps                          GET  /api/v1/apps/verify_credentials
    GET  /oauth/authorize                      POST /oauth/token       POST /oauth/revoke
    GET  /.well-known/oauth-authorization-server
    GET  /api/v1/accounts/verify_credentials   GET  /api/v1/accounts/:id
    GET  /api/v1/accounts/:id/statuses         (newest first; limit, max_id, since_id, min_id;
                                                Link headers)
    POST /api/v1/statuses                      (Idempotency-Key kept one hour)
    GET  /api/v1/statuses/:id                  DELETE /api/v1/statuses/:id
    GET  /api/v1/statuses/:id/source
    POST /api/v2/media                         GET/PUT /api/v1/media/:id
    GET  /api/v2/instance                      GET  /api/v1/instance (deprecated, for versions)
    GET  /api/v2/search                        (resolve: this server's statuses and accounts
                                                by URL; accounts by username)

with the documented error bodies (401 `The access token is invalid`, 404 `Record not found`,
422 `Validation failed: …`), rate-limit headers on every answer to a user token and a 429 past
the limit. Everything it knows sits in a `MastodonState` a test or benchmark builds,
changes and reads:

    state = MastodonState(config=InstanceConfig(max_characters=100), clock=FixedClock())
    alice = state.add_account("alice")          # an account and a ready access token
    state.plan_faults(DropAfterCreating())      # the next POST /api/v1/statuses
    async with mastodon_server(state) as server:
        ...                                     # server.url; alice.access_token
    assert [s.text for s in state.statuses_by(alice.account)] == [...]

Faults (`FailBeforeCreating`, `DropAfterCreating`, `AnswerLate`) apply, in the order they were
planned, to the next posts of a status, for tests of publishing exactly once.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import json
import re
import secrets
import unicodedata
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import URL, Headers, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hubbub.kernel.clock import Clock, SystemClock, moment_of

OOB = "urn:ietf:wg:oauth:2.0:oob"
DEFAULT_SCOPES = ("read", "write", "follow", "push")
SCOPES = (
    *("read", "write", "follow", "push", "profile"),
    *(f"read:{name}" for name in ("accounts", "blocks", "bookmarks", "favourites", "filters")),
    *(f"read:{name}" for name in ("follows", "lists", "mutes", "notifications", "search")),
    "read:statuses",
    *(f"write:{name}" for name in ("accounts", "blocks", "bookmarks", "conversations")),
    *(f"write:{name}" for name in ("favourites", "filters", "follows", "lists", "media")),
    *(f"write:{name}" for name in ("mutes", "notifications", "reports", "statuses")),
)
VISIBILITIES = ("public", "unlisted", "private", "direct")
TOKEN_INVALID = "The access token is invalid"
NOT_FOUND = "Record not found"
SEARCH_NEEDS_USER = (
    "Search queries that resolve remote resources are not supported without authentication"
)
CODE_TTL_S = 600.0  # Doorkeeper's default lifetime of an authorization code
INVALID_CLIENT = (
    "Client authentication failed due to unknown client, no client authentication included, "
    "or unsupported authentication method."
)
INVALID_GRANT = (
    "The provided authorization grant is invalid, expired, revoked, does not match the "
    "redirection URI used in the authorization request, or was issued to another client."
)
INVALID_SCOPE = "The requested scope is invalid, unknown, or malformed."
MEDIA_NOT_READY = "Cannot attach files that have not finished processing. Try again in a moment!"
MEBIBYTE = 1024 * 1024
KEEP_ALIVE_S = 60


# Configuration ----------------------------------------------------------------------------


@dataclass
class InstanceConfig:
    """What the server announces in `GET /api/v2/instance` and enforces, and how it behaves.

    Defaults are Mastodon's (docs: entities/Instance, api/rate-limits, user/posting). Media
    finishes processing once it has been polled `media_processing_polls` times *and*
    `media_processing_s` seconds (on the state's clock) have passed since its upload; with both
    at zero an upload is processed at once and answered 200 instead of 202.
    """

    max_characters: int = 500
    max_media_attachments: int = 4
    characters_reserved_per_url: int = 23
    image_size_limit: int = 16 * MEBIBYTE
    video_size_limit: int = 99 * MEBIBYTE
    description_limit: int = 1500
    image_matrix_limit: int = 33_177_600
    video_matrix_limit: int = 8_294_400
    video_frame_rate_limit: int = 120
    supported_mime_types: tuple[str, ...] = (
        *("image/jpeg", "image/png", "image/gif", "image/heic", "image/heif", "image/webp"),
        *("image/avif", "video/webm", "video/mp4", "video/quicktime", "video/ogg"),
        *("audio/wave", "audio/wav", "audio/x-wav", "audio/x-pn-wave", "audio/vnd.wave"),
        *("audio/ogg", "audio/vorbis", "audio/mpeg", "audio/mp3", "audio/webm", "audio/flac"),
        *("audio/aac", "audio/m4a", "audio/x-m4a", "audio/mp4", "audio/3gpp", "video/x-ms-asf"),
    )
    rate_limit: int = 300
    rate_limit_period_s: int = 300
    media_processing_polls: int = 1
    media_processing_s: float = 0.0
    version: str = "4.4.0"
    api_version: int = 4
    title: str = "Mastodon (test)"


# Records ----------------------------------------------------------------------------------


@dataclass
class Account:
    id: str
    username: str
    display_name: str
    created_at_us: int
    note: str = ""
    default_visibility: str = "public"
    statuses_count: int = 0
    last_status_us: int | None = None
    """Kept as statuses come and go, for the Account entity every Status carries."""


@dataclass
class Application:
    id: str
    name: str
    website: str | None
    redirect_uris: list[str]
    scopes: list[str]
    client_id: str
    client_secret: str


@dataclass
class AccessToken:
    """An OAuth token: a user's when it has an `account`, else the application's own."""

    token: str
    scopes: tuple[str, ...]
    created_at_us: int
    application: Application
    account: Account | None
    revoked: bool = False


@dataclass
class AuthorizationCode:
    code: str
    application: Application
    account: Account
    redirect_uri: str
    scopes: tuple[str, ...]
    issued_at_s: float
    code_challenge: str | None


@dataclass
class Media:
    """An uploaded file; attached to a status once `status_id` is set."""

    id: str
    account: Account
    type: str
    content_type: str
    file_name: str
    data: bytes
    description: str | None
    focus: tuple[float, float] | None
    uploaded_at_s: float
    polls_needed: int
    processing_s: float
    polls: int = 0
    status_id: str | None = None

    def processed(self, now_s: float) -> bool:
        return self.polls >= self.polls_needed and now_s - self.uploaded_at_s >= self.processing_s


@dataclass
class Status:
    id: str
    account: Account
    text: str
    spoiler_text: str
    visibility: str
    sensitive: bool
    language: str | None
    media: list[Media]
    in_reply_to: Status | None
    application: Application | None
    created_at_us: int
    idempotency_key: str | None
    replies: int = 0
    """Statuses in reply to this one, counted as they come and go (not by a scan of all
    statuses for each answer, which made a sandbox of 100,000 statuses crawl)."""


@dataclass
class RecordedRequest:
    """One request as the server got it; `status` is what it answered (None: no answer)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    status: int | None = None


@dataclass(frozen=True)
class Login:
    """An account and an access token of its own, as `MastodonState.add_account` makes them."""

    account: Account
    access_token: str


# Faults -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FailBeforeCreating:
    """Answer `status` (500, 503…) at once and create nothing, as a failing server or proxy."""

    status: int = 503


@dataclass(frozen=True)
class DropAfterCreating:
    """Create the status, then close the connection without sending a byte of the answer:
    the client cannot tell whether the status exists."""


@dataclass(frozen=True)
class AnswerLate:
    """Create the status, then hold the answer back `delay_s` seconds (real time), longer
    than the client waits."""

    delay_s: float = 2.0


StatusFault = FailBeforeCreating | DropAfterCreating | AnswerLate


# Idempotency keys and rate limits ---------------------------------------------------------


@dataclass
class IdempotencyKeys:
    """Keys of `POST /api/v1/statuses` per account, each kept `ttl_s` seconds after the
    status it created, as Mastodon keeps them an hour in Redis; expired keys are dropped on
    every use, so the store holds at most the keys of the last hour."""

    ttl_s: float = 3600.0
    entries: OrderedDict[tuple[str, str], tuple[str, float]] = field(default_factory=OrderedDict)

    def find(self, account: Account, key: str, now_s: float) -> str | None:
        """The id of the status `key` created for `account` within the last `ttl_s`."""
        self.expire(now_s)
        entry = self.entries.get((account.id, key))
        return entry[0] if entry else None

    def remember(self, account: Account, key: str, status_id: str, now_s: float) -> None:
        self.expire(now_s)
        self.entries[(account.id, key)] = (status_id, now_s)

    def expire(self, now_s: float) -> None:
        """Drop the keys older than `ttl_s`; the oldest come first, as they were stored."""
        while self.entries:
            _, (_, stored_at) = next(iter(self.entries.items()))
            if now_s - stored_at < self.ttl_s:
                return
            self.entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self.entries)


@dataclass(frozen=True)
class RateReading:
    """Where an account stands in its current rate-limit window."""

    limit: int
    remaining: int
    reset_us: int
    exceeded: bool

    def headers(self) -> dict[str, str]:
        reset = moment_of(self.reset_us).isoformat(timespec="microseconds")
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": reset.replace("+00:00", "Z"),
        }


@dataclass
class RateCounter:
    """Requests per account in fixed windows aligned on the epoch, as Rack::Attack counts
    them for Mastodon; a throttled request counts too."""

    windows: dict[str, tuple[int, int]] = field(default_factory=dict)

    def count(self, account: Account, now_us: int, limit: int, period_s: int) -> RateReading:
        period_us = period_s * 1_000_000
        window = now_us // period_us
        started, seen = self.windows.get(account.id, (window, 0))
        seen = seen + 1 if started == window else 1
        self.windows[account.id] = (window, seen)
        return RateReading(limit, max(0, limit - seen), (window + 1) * period_us, seen > limit)


# State ------------------------------------------------------------------------------------


@dataclass
class MastodonState:
    """Everything the server knows; tests create accounts, change `config`, plan faults and
    read what clients did through it. `clock` times idempotency keys, rate-limit windows,
    media processing, authorization codes and every `created_at`."""

    config: InstanceConfig = field(default_factory=InstanceConfig)
    clock: Clock = field(default_factory=SystemClock)
    accounts: dict[str, Account] = field(default_factory=dict)
    apps: dict[str, Application] = field(default_factory=dict)
    tokens: dict[str, AccessToken] = field(default_factory=dict)
    codes: dict[str, AuthorizationCode] = field(default_factory=dict)
    statuses: dict[str, Status] = field(default_factory=dict)
    deleted_statuses: list[Status] = field(default_factory=list)
    media: dict[str, Media] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    faults: deque[StatusFault] = field(default_factory=deque)
    rate_counter: RateCounter = field(default_factory=RateCounter)
    idempotency_keys: IdempotencyKeys = field(default_factory=IdempotencyKeys)
    signed_in: Account | None = None
    """The account `GET /oauth/authorize` approves for, as a browser session would."""
    _last_id: int = field(default=0, init=False, repr=False)
    _test_app: Application | None = field(default=None, init=False, repr=False)

    def next_id(self) -> str:
        """An id that sorts after every earlier one, milliseconds in its high bits as in
        Mastodon's snowflake ids."""
        self._last_id = max(self._last_id + 1, (self.clock.now_us() // 1000) << 16)
        return str(self._last_id)

    def add_account(self, username: str, scopes: Iterable[str] = DEFAULT_SCOPES) -> Login:
        """A new account with an access token ready, as if its owner had authorized an app."""
        account = self.create_account(username)
        token = self.grant_token(account, tuple(scopes), self._tests_application())
        return Login(account, token.token)

    def create_account(self, username: str, display_name: str = "") -> Account:
        if any(known.username == username for known in self.accounts.values()):
            raise ValueError(f"an account named {username!r} exists already")
        account = Account(self.next_id(), username, display_name or username, self.clock.now_us())
        self.accounts[account.id] = account
        return account

    def register_app(
        self, name: str, redirect_uris: list[str], scopes: list[str], website: str | None = None
    ) -> Application:
        app = Application(
            self.next_id(),
            name,
            website,
            redirect_uris,
            scopes,
            secrets.token_urlsafe(32),
            secrets.token_urlsafe(32),
        )
        self.apps[app.client_id] = app
        return app

    def grant_token(
        self, account: Account | None, scopes: tuple[str, ...], application: Application
    ) -> AccessToken:
        token = AccessToken(
            secrets.token_urlsafe(32), scopes, self.clock.now_us(), application, account
        )
        self.tokens[token.token] = token
        return token

    def token_for(self, authorization: str | None) -> AccessToken | None:
        """The live token of an `Authorization: Bearer …` header, if any."""
        scheme, _, value = (authorization or "").partition(" ")
        token = self.tokens.get(value.strip()) if scheme.lower() == "bearer" else None
        return token if token is not None and not token.revoked else None

    def plan_faults(self, fault: StatusFault, times: int = 1) -> None:
        """Make the next `times` posts of a status meet `fault`, after those planned before."""
        self.faults.extend([fault] * times)

    def statuses_by(self, account: Account) -> list[Status]:
        """The account's statuses that exist now, newest first."""
        own = [status for status in self.statuses.values() if status.account is account]
        return sorted(own, key=lambda status: int(status.id), reverse=True)

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and r.path == path]

    def _tests_application(self) -> Application:
        """The application behind the tokens `add_account` hands out."""
        if self._test_app is None:
            self._test_app = self.register_app("Hubbub tests", [OOB], list(DEFAULT_SCOPES))
        return self._test_app


# Errors and parameters --------------------------------------------------------------------


class ApiError(Exception):
    """An answer with Mastodon's Error entity: `{"error": …, "error_description": …}`."""

    def __init__(self, status: int, error: str, description: str | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.description = description

    def response(self) -> JSONResponse:
        body = {"error": self.error}
        if self.description is not None:
            body["error_description"] = self.description
        return JSONResponse(body, status_code=self.status)


@dataclass(frozen=True)
class Upload:
    file_name: str
    content_type: str
    data: bytes


FALSE_VALUES = frozenset({"0", "f", "false", "off"})


@dataclass(frozen=True)
class Params:
    """A request's parameters, from its query and its body (form, multipart or JSON) alike,
    as Rails merges them; `name[]` and `name` are the same list."""

    values: dict[str, list[Any]]
    uploads: dict[str, Upload]

    def text(self, name: str) -> str | None:
        values = self.values.get(name)
        if not values or values[-1] is None:
            return None
        value = values[-1]
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    def texts(self, name: str) -> list[str]:
        return [str(value) for value in self.values.get(name, []) if value is not None]

    def flag(self, name: str) -> bool | None:
        """A boolean as Rails casts one: blank is none, `0`, `f`, `false`, `off` are false."""
        value = self.text(name)
        if value is None or value == "":
            return None
        return value.lower() not in FALSE_VALUES


async def read_params(request: Request) -> Params:
    values: dict[str, list[Any]] = {}
    uploads: dict[str, Upload] = {}
    for key, value in request.query_params.multi_items():
        values.setdefault(key.removesuffix("[]"), []).append(value)
    if request.headers.get("content-type", "").startswith("application/json"):
        for key, value in (await _json_body(request)).items():
            values[key.removesuffix("[]")] = value if isinstance(value, list) else [value]
        return Params(values, uploads)
    async with request.form() as form:
        for key, item in form.multi_items():
            if isinstance(item, UploadFile):
                uploads[key] = Upload(
                    item.filename or "", item.content_type or "", await item.read()
                )
            else:
                values.setdefault(key.removesuffix("[]"), []).append(item)
    return Params(values, uploads)


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError as error:
        raise ApiError(400, f"Error occurred while parsing request parameters: {error}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "Error occurred while parsing request parameters")
    return body


# Text rules -------------------------------------------------------------------------------

URL_PATTERN = re.compile(r"(?<![A-Za-z0-9@$#])https?://[^\s<>\"]+", re.IGNORECASE)
MENTION_PATTERN = re.compile(
    r"(?<![=/\w])@(?P<username>[a-z0-9_]+(?:[.-]+[a-z0-9_]+)*)(?:@[\w.-]+\w)?", re.IGNORECASE
)
URL_TRAILING = ".,:;!?'\")]}"
ZERO_WIDTH_JOINER = "\u200d"


def status_length(text: str, spoiler_text: str, characters_per_url: int) -> int:
    """How many characters a status counts against `max_characters`, as Mastodon counts
    them (docs: user/posting#links, #mentions): its content warning and its text together,
    each http(s) URL as `characters_per_url`, each `@user@domain` as `@user` only, in
    grapheme clusters."""
    return grapheme_length(spoiler_text + countable_text(text, characters_per_url))


def countable_text(text: str, characters_per_url: int) -> str:
    pieces: list[str] = []
    cursor = 0
    for start, end, replacement in _entities(text, characters_per_url):
        pieces += [text[cursor:start], replacement]
        cursor = end
    return "".join([*pieces, text[cursor:]])


def _entities(text: str, characters_per_url: int) -> list[tuple[int, int, str]]:
    """URLs (their trailing punctuation left out) and the mentions that are not inside one."""
    urls = [
        (match.start(), match.start() + len(match.group().rstrip(URL_TRAILING)))
        for match in URL_PATTERN.finditer(text)
    ]
    mentions = [
        (match.start(), match.end(), "@" + match["username"])
        for match in MENTION_PATTERN.finditer(text)
        if not any(start < match.end() and match.start() < end for start, end in urls)
    ]
    return sorted([(start, end, "x" * characters_per_url) for start, end in urls] + mentions)


def grapheme_length(text: str) -> int:
    """The number of user-perceived characters: combining marks, variation selectors, skin
    tones, tags and ZWJ sequences join the character before them, regional indicators pair
    into flags, CR LF is one. Close to Unicode's extended grapheme clusters (UAX #29) for
    the text people post, without a segmentation library."""
    count = 0
    previous = ""
    unpaired_flag = False
    for char in text:
        regional = 0x1F1E6 <= ord(char) <= 0x1F1FF
        if _continues_cluster(previous, char) or (regional and unpaired_flag):
            unpaired_flag = False
        else:
            count += 1
            unpaired_flag = regional
        previous = char
    return count


def _continues_cluster(previous: str, char: str) -> bool:
    code = ord(char)
    return (
        previous == ZERO_WIDTH_JOINER
        or (previous == "\r" and char == "\n")
        or char == ZERO_WIDTH_JOINER
        or unicodedata.category(char) in ("Mn", "Mc", "Me")
        or 0xFE00 <= code <= 0xFE0F
        or 0x1F3FB <= code <= 0x1F3FF
        or 0xE0020 <= code <= 0xE007F
    )


def status_html(text: str) -> str:
    """A status's `content`: its text escaped, in paragraphs at blank lines, lines broken
    with `<br />`, as Mastodon formats plain text (without turning links into anchors)."""
    paragraphs = [part for part in re.split(r"\n\s*\n", text.strip()) if part]
    return "".join(
        "<p>" + "<br />".join(map(html.escape, part.split("\n"))) + "</p>" for part in paragraphs
    )


def human_size(size: int) -> str:
    """A byte count as Rails' `number_to_human_size` writes it in Mastodon's messages
    ("16 MB"): powers of 1024, three significant digits."""
    if size < 1024:
        return f"{size} {'Byte' if size == 1 else 'Bytes'}"
    exponent = min((size.bit_length() - 1) // 10, 4)
    value = size / 1024**exponent
    rounded = round(value, max(0, 3 - len(str(int(value)))))
    return f"{rounded:g} {('KB', 'MB', 'GB', 'TB')[exponent - 1]}"


def media_type(content_type: str) -> str:
    """The MediaAttachment `type` of an upload: GIFs become `gifv`, as Mastodon converts them."""
    if content_type == "image/gif":
        return "gifv"
    kind = content_type.partition("/")[0]
    return kind if kind in ("image", "video", "audio") else "unknown"


def parse_focus(value: str | None) -> tuple[float, float] | None:
    if not value:
        return None
    try:
        x, y = (max(-1.0, min(1.0, float(part))) for part in value.split(","))
    except ValueError:
        return None
    return (x, y)


def allows(granted: Iterable[str], needed: Iterable[str]) -> bool:
    """Whether a token's scopes cover one of `needed`; `write` covers `write:statuses`."""
    granted = set(granted)
    return any(scope in granted or scope.partition(":")[0] in granted for scope in needed)


def timestamp(now_us: int) -> str:
    """A datetime as the API writes one: ISO 8601, UTC, milliseconds ("…T11:34:47.196Z")."""
    moment = moment_of(now_us)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def with_query(url: str, **params: str | None) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query) + [(k, v) for k, v in params.items() if v is not None]
    return urlunsplit(parts._replace(query=urlencode(query)))


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


# Entities ---------------------------------------------------------------------------------


class Entities:
    """The documented entities (docs: entities/*) of the state's records, with URLs on the
    server that answers `base`."""

    def __init__(self, state: MastodonState, base: str) -> None:
        self.state = state
        self.base = base
        self.domain = urlsplit(base).netloc

    def account(self, account: Account) -> dict[str, Any]:
        created = moment_of(account.created_at_us).strftime("%Y-%m-%dT00:00:00.000Z")
        avatar = f"{self.base}/avatars/original/missing.png"
        header = f"{self.base}/headers/original/missing.png"
        return {
            "id": account.id,
            "username": account.username,
            "acct": account.username,
            "display_name": account.display_name,
            "locked": False,
            "bot": False,
            "discoverable": True,
            "indexable": False,
            "group": False,
            "created_at": created,
            "note": status_html(account.note),
            "url": f"{self.base}/@{account.username}",
            "uri": f"{self.base}/users/{account.username}",
            "avatar": avatar,
            "avatar_static": avatar,
            "header": header,
            "header_static": header,
            "followers_count": 0,
            "following_count": 0,
            "statuses_count": account.statuses_count,
            "last_status_at": moment_of(account.last_status_us).date().isoformat()
            if account.last_status_us is not None
            else None,
            "hide_collections": False,
            "noindex": False,
            "emojis": [],
            "roles": [],
            "fields": [],
        }

    def credential_account(self, account: Account) -> dict[str, Any]:
        source = {
            "privacy": account.default_visibility,
            "sensitive": False,
            "language": "",
            "note": account.note,
            "fields": [],
            "follow_requests_count": 0,
            "hide_collections": False,
            "discoverable": True,
            "indexable": False,
            "attribution_domains": [],
        }
        role = {"id": "-99", "name": "", "permissions": "0", "color": "", "highlighted": False}
        return {**self.account(account), "source": source, "role": role}

    @staticmethod
    def application(app: Application) -> dict[str, Any]:
        return {
            "id": app.id,
            "name": app.name,
            "website": app.website,
            "scopes": app.scopes,
            "redirect_uri": "\n".join(app.redirect_uris),
            "redirect_uris": app.redirect_uris,
        }

    def credential_application(self, app: Application) -> dict[str, Any]:
        secrets_part = {
            "client_id": app.client_id,
            "client_secret": app.client_secret,
            "client_secret_expires_at": 0,
        }
        return {**self.application(app), **secrets_part}

    def status(self, status: Status) -> dict[str, Any]:
        parent = status.in_reply_to
        url_path = f"@{status.account.username}/{status.id}"
        application = status.application
        return {
            "id": status.id,
            "created_at": timestamp(status.created_at_us),
            "in_reply_to_id": parent.id if parent else None,
            "in_reply_to_account_id": parent.account.id if parent else None,
            "sensitive": status.sensitive,
            "spoiler_text": status.spoiler_text,
            "visibility": status.visibility,
            "language": status.language,
            "uri": f"{self.base}/users/{status.account.username}/statuses/{status.id}",
            "url": f"{self.base}/{url_path}",
            "replies_count": self._replies_to(status),
            "reblogs_count": 0,
            "favourites_count": 0,
            "quotes_count": 0,
            "edited_at": None,
            "favourited": False,
            "reblogged": False,
            "muted": False,
            "bookmarked": False,
            "pinned": False,
            "content": status_html(status.text),
            "filtered": [],
            "reblog": None,
            "application": {"name": application.name, "website": application.website}
            if application
            else None,
            "account": self.account(status.account),
            "media_attachments": [self.media(media) for media in status.media],
            "mentions": [],
            "tags": [],
            "emojis": [],
            "card": None,
            "poll": None,
        }

    def media(self, media: Media) -> dict[str, Any]:
        files = f"{self.base}/system/media_attachments/files/{media.id}"
        done = media.processed(self.state.clock.monotonic_s())
        meta: dict[str, Any] = {}
        if media.focus is not None:
            meta["focus"] = {"x": media.focus[0], "y": media.focus[1]}
        return {
            "id": media.id,
            "type": media.type,
            "url": f"{files}/original/{media.file_name}" if done else None,
            "preview_url": f"{files}/small/{media.file_name}",
            "remote_url": None,
            "preview_remote_url": None,
            "text_url": None,
            "meta": meta,
            "description": media.description,
            "blurhash": None,
        }

    def instance(self) -> dict[str, Any]:
        """The Instance entity of `GET /api/v2/instance` (docs: methods/instance#v2)."""
        config = self.state.config
        return {
            "domain": self.domain,
            "title": config.title,
            "version": config.version,
            "source_url": "https://github.com/mastodon/mastodon",
            "description": "A Mastodon API server for tests",
            "usage": {"users": {"active_month": len(self.state.accounts)}},
            "thumbnail": {"url": f"{self.base}/packs/media/images/preview.png"},
            "icon": [],
            "languages": ["en"],
            "configuration": self._configuration(),
            "registrations": {
                "enabled": False,
                "approval_required": False,
                "reason_required": False,
                "message": None,
                "min_age": None,
                "url": None,
            },
            "api_versions": {"mastodon": config.api_version},
            "contact": {"email": f"admin@{self.domain}", "account": None},
            "rules": [],
        }

    def instance_v1(self) -> dict[str, Any]:
        """The V1::Instance entity (docs: methods/instance#v1); clients read its `version`."""
        config = self.state.config
        return {
            "uri": self.domain,
            "title": config.title,
            "short_description": "A Mastodon API server for tests",
            "description": "",
            "email": f"admin@{self.domain}",
            "version": config.version,
            "urls": {"streaming_api": self._streaming_url()},
            "stats": {
                "user_count": len(self.state.accounts),
                "status_count": len(self.state.statuses),
                "domain_count": 0,
            },
            "thumbnail": None,
            "languages": ["en"],
            "registrations": False,
            "approval_required": False,
            "invites_enabled": False,
            "configuration": self._configuration(),
            "contact_account": None,
            "rules": [],
        }

    def _configuration(self) -> dict[str, Any]:
        config = self.state.config
        return {
            "urls": {"streaming": self._streaming_url(), "status": None},
            "vapid": {"public_key": ""},
            "accounts": {"max_featured_tags": 10, "max_pinned_statuses": 5},
            "statuses": {
                "max_characters": config.max_characters,
                "max_media_attachments": config.max_media_attachments,
                "characters_reserved_per_url": config.characters_reserved_per_url,
            },
            "media_attachments": {
                "supported_mime_types": list(config.supported_mime_types),
                "description_limit": config.description_limit,
                "image_size_limit": config.image_size_limit,
                "image_matrix_limit": config.image_matrix_limit,
                "video_size_limit": config.video_size_limit,
                "video_frame_rate_limit": config.video_frame_rate_limit,
                "video_matrix_limit": config.video_matrix_limit,
            },
            "polls": {
                "max_options": 4,
                "max_characters_per_option": 50,
                "min_expiration": 300,
                "max_expiration": 2_629_746,
            },
            "translation": {"enabled": False},
            "limited_federation": False,
        }

    def _streaming_url(self) -> str:
        return "ws" + self.base.removeprefix("http")

    def _replies_to(self, status: Status) -> int:
        return status.replies


def answer(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return JSONResponse(payload, status_code=status, headers=headers)


# Endpoints --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    account: Account
    token: AccessToken


class Guard:
    """Checks the bearer token of a request as Mastodon does: unknown or revoked is 401,
    outside the token's scopes 403, an application token where a user is needed 422."""

    def __init__(self, state: MastodonState) -> None:
        self.state = state

    def token(self, request: Request, *scopes: str) -> AccessToken:
        token = self.state.token_for(request.headers.get("authorization"))
        if token is None:
            raise ApiError(401, TOKEN_INVALID)
        if scopes and not allows(token.scopes, scopes):
            raise ApiError(403, "This action is outside the authorized scopes")
        return token

    def user(self, request: Request, *scopes: str) -> Caller:
        token = self.token(request, *scopes)
        if token.account is None:
            raise ApiError(422, "This method requires an authenticated user")
        return Caller(token.account, token)

    def viewer(self, request: Request, *scopes: str) -> Account | None:
        """The user of a public method: none without a token, checked like any when given."""
        if "authorization" not in request.headers:
            return None
        return self.token(request, *scopes).account


class OAuthEndpoints:
    """Apps and OAuth (docs: methods/apps, methods/oauth): registration, the authorization
    code flow (approved at once for `state.signed_in`), client credentials, revocation."""

    def __init__(self, state: MastodonState, guard: Guard) -> None:
        self.state = state
        self.guard = guard

    def routes(self) -> list[Route]:
        return [
            Route("/api/v1/apps", self.register_app, methods=["POST"]),
            Route("/api/v1/apps/verify_credentials", self.verify_app, methods=["GET"]),
            Route("/.well-known/oauth-authorization-server", self.server_metadata),
            Route("/oauth/authorize", self.authorize, methods=["GET"]),
            Route("/oauth/token", self.issue_token, methods=["POST"]),
            Route("/oauth/revoke", self.revoke, methods=["POST"]),
        ]

    async def register_app(self, request: Request) -> Response:
        params = await read_params(request)
        name = (params.text("client_name") or "").strip()
        uris = [uri for value in params.texts("redirect_uris") for uri in value.split()]
        if not name:
            raise ApiError(422, "Validation failed: Application name can't be blank")
        if not uris:
            raise ApiError(422, "Validation failed: Redirect URI can't be blank")
        if not all(_absolute_uri(uri) for uri in uris):
            raise ApiError(422, "Validation failed: Redirect URI must be an absolute URI.")
        scopes = (params.text("scopes") or "read").split()
        app = self.state.register_app(name, uris, scopes, params.text("website"))
        return answer(Entities(self.state, base_url(request)).credential_application(app))

    async def verify_app(self, request: Request) -> Response:
        token = self.guard.token(request)
        return answer(Entities.application(token.application))

    async def server_metadata(self, request: Request) -> Response:
        base = base_url(request)
        return answer(
            {
                "issuer": f"{base}/",
                "service_documentation": "https://docs.joinmastodon.org/",
                "authorization_endpoint": f"{base}/oauth/authorize",
                "token_endpoint": f"{base}/oauth/token",
                "app_registration_endpoint": f"{base}/api/v1/apps",
                "revocation_endpoint": f"{base}/oauth/revoke",
                "scopes_supported": list(SCOPES),
                "response_types_supported": ["code"],
                "response_modes_supported": ["query", "fragment", "form_post"],
                "code_challenge_methods_supported": ["S256"],
                "grant_types_supported": ["authorization_code", "client_credentials"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                ],
            }
        )

    async def authorize(self, request: Request) -> Response:
        """Approve at once for the signed-in account: redirect with `code` (and `state`), or
        show the code on a page for the out-of-band redirect URI."""
        query = request.query_params
        app = self.state.apps.get(query.get("client_id", ""))
        if app is None:
            raise ApiError(400, "invalid_client", INVALID_CLIENT)
        redirect_uri = query.get("redirect_uri", "")
        if redirect_uri not in app.redirect_uris:
            raise ApiError(400, "invalid_redirect_uri", "The redirect uri included is not valid.")
        refusal = self._refusal(app, query.get("response_type"), query)
        if refusal:
            return _refuse(redirect_uri, refusal, query.get("state"))
        if self.state.signed_in is None:
            return RedirectResponse(f"{base_url(request)}/auth/sign_in", status_code=302)
        code = self._issue_code(app, self.state.signed_in, redirect_uri, query)
        if redirect_uri == OOB:
            return _code_page(code.code)
        location = with_query(redirect_uri, code=code.code, state=query.get("state"))
        return RedirectResponse(location, status_code=302)

    @staticmethod
    def _refusal(app: Application, response_type: str | None, query: Mapping[str, str]) -> str:
        """Why the request cannot be approved, as an OAuth 2 error code; empty if it can."""
        if response_type != "code":
            return "unsupported_response_type"
        if not set((query.get("scope") or "read").split()) <= set(app.scopes):
            return "invalid_scope"
        if "code_challenge" in query and query.get("code_challenge_method") != "S256":
            return "invalid_request"
        return ""

    def _issue_code(
        self, app: Application, account: Account, redirect_uri: str, query: Mapping[str, str]
    ) -> AuthorizationCode:
        code = AuthorizationCode(
            secrets.token_urlsafe(32),
            app,
            account,
            redirect_uri,
            tuple((query.get("scope") or "read").split()),
            self.state.clock.monotonic_s(),
            query.get("code_challenge"),
        )
        self.state.codes[code.code] = code
        return code

    async def issue_token(self, request: Request) -> Response:
        params = await read_params(request)
        app = self._client(request, params)
        if app is None:
            raise ApiError(401, "invalid_client", INVALID_CLIENT)
        grant_type = params.text("grant_type")
        if grant_type == "authorization_code":
            token = self._exchange_code(app, params)
        elif grant_type == "client_credentials":
            token = self._application_token(app, params)
        else:
            message = "The authorization grant type is not supported by the authorization server."
            raise ApiError(400, "unsupported_grant_type", message)
        return answer(
            {
                "access_token": token.token,
                "token_type": "Bearer",
                "scope": " ".join(token.scopes),
                "created_at": token.created_at_us // 1_000_000,
            }
        )

    def _exchange_code(self, app: Application, params: Params) -> AccessToken:
        code = self.state.codes.get(params.text("code") or "")
        if code is None or not self._redeemable(code, app, params):
            raise ApiError(400, "invalid_grant", INVALID_GRANT)
        del self.state.codes[code.code]
        return self.state.grant_token(code.account, code.scopes, app)

    def _redeemable(self, code: AuthorizationCode, app: Application, params: Params) -> bool:
        fresh = self.state.clock.monotonic_s() - code.issued_at_s < CODE_TTL_S
        verifier = params.text("code_verifier") or ""
        return (
            fresh
            and code.application is app
            and code.redirect_uri == params.text("redirect_uri")
            and (code.code_challenge is None or _s256(verifier) == code.code_challenge)
        )

    def _application_token(self, app: Application, params: Params) -> AccessToken:
        scopes = tuple((params.text("scope") or "read").split())
        if not set(scopes) <= set(app.scopes):
            raise ApiError(400, "invalid_scope", INVALID_SCOPE)
        return self.state.grant_token(None, scopes, app)

    async def revoke(self, request: Request) -> Response:
        params = await read_params(request)
        app = self._client(request, params)
        token = self.state.tokens.get(params.text("token") or "")
        if app is None or (token is not None and token.application is not app):
            message = "You are not authorized to revoke this token"
            raise ApiError(403, "unauthorized_client", message)
        if token is not None:
            token.revoked = True
        return answer({})

    def _client(self, request: Request, params: Params) -> Application | None:
        """The application that authenticates with `client_id` and `client_secret`, in the
        form or in HTTP Basic authentication."""
        client_id, client_secret = params.text("client_id"), params.text("client_secret")
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            client_id, client_secret = _basic_credentials(encoded)
        app = self.state.apps.get(client_id or "")
        if app is None or not secrets.compare_digest(app.client_secret, client_secret or ""):
            return None
        return app


def _basic_credentials(encoded: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(encoded, validate=True).decode()
    except ValueError:
        return ("", "")
    client_id, _, client_secret = decoded.partition(":")
    return (client_id, client_secret)


def _absolute_uri(uri: str) -> bool:
    parts = urlsplit(uri)
    return uri == OOB or (bool(parts.scheme) and bool(parts.netloc) and not parts.fragment)


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _refuse(redirect_uri: str, error: str, state: str | None) -> Response:
    """An authorization request refused: to the client by redirect, as OAuth 2 says, or as
    a page when there is nowhere to redirect to."""
    if redirect_uri == OOB:
        return ApiError(400, error).response()
    return RedirectResponse(with_query(redirect_uri, error=error, state=state), status_code=302)


def _code_page(code: str) -> HTMLResponse:
    return HTMLResponse(
        "<!DOCTYPE html><html><body><p>Copy this authorization code to the application.</p>"
        f'<input type="text" class="oauth-code" readonly value="{html.escape(code)}">'
        "</body></html>"
    )


class AccountEndpoints:
    """Accounts (docs: methods/accounts): your own, anyone's, and their statuses by page."""

    def __init__(self, state: MastodonState, guard: Guard) -> None:
        self.state = state
        self.guard = guard

    def routes(self) -> list[Route]:
        return [
            Route("/api/v1/accounts/verify_credentials", self.verify_credentials),
            Route("/api/v1/accounts/{id}", self.show),
            Route("/api/v1/accounts/{id}/statuses", self.statuses),
        ]

    async def verify_credentials(self, request: Request) -> Response:
        caller = self.guard.user(request, "read:accounts", "profile")
        return answer(Entities(self.state, base_url(request)).credential_account(caller.account))

    async def show(self, request: Request) -> Response:
        self.guard.viewer(request, "read:accounts")
        account = self._account(request)
        return answer(Entities(self.state, base_url(request)).account(account))

    async def statuses(self, request: Request) -> Response:
        """A page of the account's statuses the caller may see, newest first, with `Link`
        headers to the next (older) and previous (newer) pages."""
        viewer = self.guard.viewer(request, "read:statuses")
        account = self._account(request)
        params = await read_params(request)
        page_request = PageRequest.of(params)
        visible = [s for s in self.state.statuses_by(account) if _visible(s, viewer)]
        page = page_request.page(_filtered(visible, params))
        entities = Entities(self.state, base_url(request))
        link = pagination_links(request.url, page, page_request.limit)
        return answer([entities.status(s) for s in page], headers={"Link": link} if link else None)

    def _account(self, request: Request) -> Account:
        account = self.state.accounts.get(request.path_params["id"])
        if account is None:
            raise ApiError(404, NOT_FOUND)
        return account


def _visible(status: Status, viewer: Account | None) -> bool:
    return status.visibility in ("public", "unlisted") or status.account is viewer


def _filtered(statuses: list[Status], params: Params) -> list[Status]:
    if params.flag("pinned"):
        return []
    if params.flag("only_media"):
        statuses = [s for s in statuses if s.media]
    if params.flag("exclude_replies"):
        statuses = [s for s in statuses if s.in_reply_to is None]
    return statuses


@dataclass(frozen=True)
class PageRequest:
    """The paging parameters of a list (docs: api/guidelines#pagination)."""

    limit: int
    max_id: int | None
    since_id: int | None
    min_id: int | None

    @classmethod
    def of(cls, params: Params, default: int = 20, most: int = 40) -> PageRequest:
        limit = _as_int(params.text("limit"))
        return cls(
            default if limit is None else min(max(limit, 1), most),
            _as_int(params.text("max_id")),
            _as_int(params.text("since_id")),
            _as_int(params.text("min_id")),
        )

    def page(self, newest_first: list[Status]) -> list[Status]:
        """The newest `limit` below `max_id` and above `since_id`; with `min_id`, the
        `limit` just above it (still newest first)."""
        chosen = [status for status in newest_first if self._inside(int(status.id))]
        return chosen[-self.limit :] if self.min_id is not None else chosen[: self.limit]

    def _inside(self, status_id: int) -> bool:
        return (
            (self.max_id is None or status_id < self.max_id)
            and (self.since_id is None or status_id > self.since_id)
            and (self.min_id is None or status_id > self.min_id)
        )


def _as_int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def pagination_links(url: URL, page: list[Status], limit: int) -> str:
    """Mastodon's `Link` header: `next` when the page is full, `prev` unless it is empty."""
    cursorless = url.remove_query_params(["max_id", "min_id", "since_id"])
    links = []
    if len(page) == limit:
        links.append(f'<{cursorless.include_query_params(max_id=page[-1].id)}>; rel="next"')
    if page:
        links.append(f'<{cursorless.include_query_params(min_id=page[0].id)}>; rel="prev"')
    return ", ".join(links)


@dataclass(frozen=True)
class Draft:
    """A status as posted, once its parameters passed validation."""

    text: str
    spoiler_text: str
    visibility: str
    sensitive: bool
    language: str | None
    media: list[Media]
    in_reply_to: Status | None


class StatusEndpoints:
    """Statuses (docs: methods/statuses): post (once per Idempotency-Key), view, delete."""

    def __init__(self, state: MastodonState, guard: Guard) -> None:
        self.state = state
        self.guard = guard

    def routes(self) -> list[Route]:
        return [
            Route("/api/v1/statuses", self.post, methods=["POST"]),
            Route("/api/v1/statuses/{id}", self.show, methods=["GET"]),
            Route("/api/v1/statuses/{id}", self.delete, methods=["DELETE"]),
            Route("/api/v1/statuses/{id}/source", self.source, methods=["GET"]),
        ]

    async def source(self, request: Request) -> Response:
        """A status as its author wrote it (StatusSource: id, text, spoiler_text), for
        editing; only the author's own (docs: methods/statuses, "View status source")."""
        caller = self.guard.user(request, "read:statuses")
        status = self.state.statuses.get(request.path_params["id"])
        if status is None or status.account is not caller.account:
            raise ApiError(404, NOT_FOUND)
        return answer({"id": status.id, "text": status.text, "spoiler_text": status.spoiler_text})

    async def post(self, request: Request) -> Response:
        """Publish, or answer the status the same Idempotency-Key from the same account
        created within the last hour without creating another."""
        caller = self.guard.user(request, "write:statuses")
        params = await read_params(request)
        _refuse_unsupported(params)
        in_reply_to = self._thread(params.text("in_reply_to_id"), caller.account)
        key = request.headers.get("idempotency-key") or None
        earlier = self._created_with(caller.account, key)
        if earlier is not None:
            return self._answer(request, earlier)
        status = self._publish(caller, self._draft(caller.account, params, in_reply_to), key)
        if key is not None:
            now_s = self.state.clock.monotonic_s()
            self.state.idempotency_keys.remember(caller.account, key, status.id, now_s)
        return self._answer(request, status)

    async def show(self, request: Request) -> Response:
        viewer = self.guard.viewer(request, "read:statuses")
        status = self.state.statuses.get(request.path_params["id"])
        if status is None or not _visible(status, viewer):
            raise ApiError(404, NOT_FOUND)
        return self._answer(request, status)

    async def delete(self, request: Request) -> Response:
        """Delete your own status; answers it with its `text`, for delete-and-redraft. Its
        media become free to attach again unless `delete_media` is set."""
        caller = self.guard.user(request, "write:statuses")
        status = self.state.statuses.get(request.path_params["id"])
        if status is None or status.account is not caller.account:
            raise ApiError(404, NOT_FOUND)
        entity = {**Entities(self.state, base_url(request)).status(status), "text": status.text}
        delete_media = (await read_params(request)).flag("delete_media")
        del self.state.statuses[status.id]
        self.state.deleted_statuses.append(status)
        if status.in_reply_to is not None:
            status.in_reply_to.replies -= 1
        left = self.state.statuses_by(caller.account)
        caller.account.statuses_count = len(left)
        caller.account.last_status_us = left[0].created_at_us if left else None
        for media in status.media:
            media.status_id = None
            if delete_media:
                self.state.media.pop(media.id, None)
        return answer(entity)

    def _answer(self, request: Request, status: Status) -> Response:
        return answer(Entities(self.state, base_url(request)).status(status))

    def _created_with(self, account: Account, key: str | None) -> Status | None:
        """The status `key` created for `account` within the hour; not found if deleted
        since, as Mastodon then fails to find the status the key points at."""
        if key is None:
            return None
        now_s = self.state.clock.monotonic_s()
        status_id = self.state.idempotency_keys.find(account, key, now_s)
        if status_id is None:
            return None
        if status_id not in self.state.statuses:
            raise ApiError(404, NOT_FOUND)
        return self.state.statuses[status_id]

    def _thread(self, in_reply_to_id: str | None, account: Account) -> Status | None:
        if not in_reply_to_id:
            return None
        parent = self.state.statuses.get(in_reply_to_id)
        if parent is None or not _visible(parent, account):
            message = "The post you are trying to reply to does not appear to exist."
            raise ApiError(404, message)
        return parent

    def _draft(self, account: Account, params: Params, in_reply_to: Status | None) -> Draft:
        media = self._media(account, params.texts("media_ids"))
        text = params.text("status") or ""
        spoiler_text = params.text("spoiler_text") or ""
        visibility = params.text("visibility") or account.default_visibility
        self._check_text(text, spoiler_text, media)
        if visibility not in VISIBILITIES:
            raise ApiError(422, "Validation failed: Visibility is not included in the list")
        sensitive = bool(params.flag("sensitive")) or bool(spoiler_text)
        language = params.text("language") or None
        return Draft(text, spoiler_text, visibility, sensitive, language, media, in_reply_to)

    def _media(self, account: Account, media_ids: list[str]) -> list[Media]:
        """The media to attach, checked in Mastodon's order: how many, whose, what mix,
        whether processed."""
        config = self.state.config
        if len(media_ids) > config.max_media_attachments:
            raise ApiError(422, f"Cannot attach more than {config.max_media_attachments} files")
        media = [self.state.media.get(media_id) for media_id in media_ids]
        missing = [
            media_id
            for media_id, found in zip(media_ids, media, strict=True)
            if found is None or found.account is not account or found.status_id is not None
        ]
        if missing:
            message = f"Media {', '.join(missing)} not found or already attached to another post"
            raise ApiError(422, message)
        attached = [found for found in media if found is not None]
        if len(attached) > 1 and any(m.type in ("video", "audio") for m in attached):
            raise ApiError(422, "Cannot attach a video to a post that already contains images")
        now_s = self.state.clock.monotonic_s()
        if not all(found.processed(now_s) for found in attached):
            raise ApiError(422, MEDIA_NOT_READY)
        return attached

    def _check_text(self, text: str, spoiler_text: str, media: list[Media]) -> None:
        config = self.state.config
        if not text.strip() and not media:
            raise ApiError(422, "Validation failed: Text can't be blank")
        length = status_length(text, spoiler_text, config.characters_reserved_per_url)
        if length > config.max_characters:
            message = f"Validation failed: Text character limit of {config.max_characters} exceeded"
            raise ApiError(422, message)

    def _publish(self, caller: Caller, draft: Draft, key: str | None) -> Status:
        status = Status(
            self.state.next_id(),
            caller.account,
            draft.text,
            draft.spoiler_text,
            draft.visibility,
            draft.sensitive,
            draft.language,
            draft.media,
            draft.in_reply_to,
            caller.token.application,
            self.state.clock.now_us(),
            key,
        )
        for media in draft.media:
            media.status_id = status.id
        if draft.in_reply_to is not None:
            draft.in_reply_to.replies += 1
        self.state.statuses[status.id] = status
        caller.account.statuses_count += 1
        caller.account.last_status_us = status.created_at_us
        return status


class SearchEndpoints:
    """Search (docs: methods/search, v2): what a URL names (`resolve`: a status or an
    account of this server, by its `url` or `uri`; another server's is not fetched, and
    not found), and accounts by the start of their username. Statuses are not searched by
    their text, as on a server without full-text search (Elasticsearch)."""

    def __init__(self, state: MastodonState, guard: Guard) -> None:
        self.state = state
        self.guard = guard

    def routes(self) -> list[Route]:
        return [Route("/api/v2/search", self.search, methods=["GET"])]

    async def search(self, request: Request) -> Response:
        viewer = self.guard.viewer(request, "read:search")
        params = await read_params(request)
        query = (params.text("q") or "").strip()
        if not query:
            raise ApiError(400, "param is missing or the value is empty: q")
        resolve = bool(params.flag("resolve"))
        if viewer is None and (resolve or (_as_int(params.text("offset")) or 0) > 0):
            raise ApiError(401, SEARCH_NEEDS_USER)
        kind = params.text("type")
        limit = min(max(_as_int(params.text("limit")) or 20, 1), 40)
        entities = Entities(self.state, base_url(request))
        found: dict[str, list[Any]] = {"accounts": [], "statuses": [], "hashtags": []}
        if resolve and re.match(r"\Ahttps?://", query):
            statuses = [s for s in self._statuses_at(entities, query) if _visible(s, viewer)]
            accounts = [
                a
                for a in self.state.accounts.values()
                if query in (entities.account(a)["url"], entities.account(a)["uri"])
            ]
            found["statuses"] = [entities.status(s) for s in statuses]
            found["accounts"] = [entities.account(a) for a in accounts]
        elif kind in (None, "accounts"):
            name = query.removeprefix("@").split("@")[0].lower()
            matching = [a for a in self.state.accounts.values()
                        if a.username.lower().startswith(name)]  # fmt: skip
            found["accounts"] = [entities.account(a) for a in matching[:limit]]
        if kind in ("accounts", "statuses", "hashtags"):
            found = {name: found[name] if name == kind else [] for name in found}
        return answer(found)

    def _statuses_at(self, entities: Entities, url: str) -> list[Status]:
        return [
            status for status in self.state.statuses.values()
            if url in ((made := entities.status(status))["url"], made["uri"])
        ]  # fmt: skip


def _refuse_unsupported(params: Params) -> None:
    """Say so plainly, rather than answer a Status where a client expects a ScheduledStatus
    or a poll it did not get."""
    for name in ("scheduled_at", "poll", "quoted_status_id"):
        if any(key == name or key.startswith(f"{name}[") for key in params.values):
            raise ApiError(422, f"This test server does not implement `{name}`")


class MediaEndpoints:
    """Media (docs: methods/media): upload answered 202 while processing, poll (206 while
    processing, 200 once done), update the description; and the files themselves."""

    def __init__(self, state: MastodonState, guard: Guard) -> None:
        self.state = state
        self.guard = guard

    def routes(self) -> list[Route]:
        return [
            Route("/api/v2/media", self.upload, methods=["POST"]),
            Route("/api/v1/media/{id}", self.show, methods=["GET"]),
            Route("/api/v1/media/{id}", self.update, methods=["PUT"]),
            Route("/system/media_attachments/files/{id}/{size}/{name}", self.file),
        ]

    async def upload(self, request: Request) -> Response:
        """Store a file within the instance's limits. A body larger than any file may be is
        refused with 413 before it is read, as the proxy in front of Mastodon refuses it;
        a file over the limit of its type is a 422 from Mastodon itself."""
        caller = self.guard.user(request, "write:media")
        if int(request.headers.get("content-length") or 0) > self._largest_file():
            return answer({"error": "Request Entity Too Large"}, 413)
        params = await read_params(request)
        upload = params.uploads.get("file")
        if upload is None:
            raise ApiError(400, "param is missing or the value is empty: file")
        self._check(upload, params.text("description"))
        media = self._store(caller.account, upload, params)
        done = media.processed(self.state.clock.monotonic_s())
        return self._answer(request, media, 200 if done else 202)

    async def show(self, request: Request) -> Response:
        """Each call is a poll, which moves processing on (see `InstanceConfig`)."""
        caller = self.guard.user(request, "write:media")
        media = self._unattached(caller.account, request.path_params["id"])
        media.polls += 1
        return self._answer(request, media)

    async def update(self, request: Request) -> Response:
        caller = self.guard.user(request, "write:media")
        media = self._unattached(caller.account, request.path_params["id"])
        params = await read_params(request)
        description = params.text("description")
        self._check_description(description)
        if description is not None:
            media.description = description
        media.focus = parse_focus(params.text("focus")) or media.focus
        return self._answer(request, media)

    async def file(self, request: Request) -> Response:
        media = self.state.media.get(request.path_params["id"])
        if media is None or not media.processed(self.state.clock.monotonic_s()):
            raise ApiError(404, NOT_FOUND)
        return Response(media.data, media_type=media.content_type)

    def _answer(self, request: Request, media: Media, status: int | None = None) -> Response:
        if status is None:
            status = 200 if media.processed(self.state.clock.monotonic_s()) else 206
        return answer(Entities(self.state, base_url(request)).media(media), status)

    def _largest_file(self) -> int:
        return max(self.state.config.image_size_limit, self.state.config.video_size_limit)

    def _check(self, upload: Upload, description: str | None) -> None:
        config = self.state.config
        if upload.content_type not in config.supported_mime_types:
            raise ApiError(422, "Validation failed: File content type is invalid, File is invalid")
        kind = media_type(upload.content_type)
        limit = config.image_size_limit if kind in ("image", "gifv") else config.video_size_limit
        if len(upload.data) > limit:
            message = f"Validation failed: File file size must be less than {human_size(limit)}"
            raise ApiError(422, message)
        self._check_description(description)

    def _check_description(self, description: str | None) -> None:
        limit = self.state.config.description_limit
        if description is not None and len(description) > limit:
            message = f"Validation failed: Description is too long (maximum is {limit} characters)"
            raise ApiError(422, message)

    def _store(self, account: Account, upload: Upload, params: Params) -> Media:
        config = self.state.config
        media = Media(
            self.state.next_id(),
            account,
            media_type(upload.content_type),
            upload.content_type,
            upload.file_name or "file",
            upload.data,
            params.text("description"),
            parse_focus(params.text("focus")),
            self.state.clock.monotonic_s(),
            config.media_processing_polls,
            config.media_processing_s,
        )
        self.state.media[media.id] = media
        return media

    def _unattached(self, account: Account, media_id: str) -> Media:
        """Your own media not yet in a status; any other is not found, as in Mastodon."""
        media = self.state.media.get(media_id)
        if media is None or media.account is not account or media.status_id is not None:
            raise ApiError(404, NOT_FOUND)
        return media


class InstanceEndpoints:
    """The instance's description (docs: methods/instance), v2 and the deprecated v1 that
    clients still read the version from."""

    def __init__(self, state: MastodonState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        return [
            Route("/api/v2/instance", self.instance),
            Route("/api/v1/instance", self.instance_v1),
        ]

    async def instance(self, request: Request) -> Response:
        return answer(Entities(self.state, base_url(request)).instance())

    async def instance_v1(self, request: Request) -> Response:
        entity = Entities(self.state, base_url(request)).instance_v1()
        return answer(entity, headers={"Deprecation": "@1668384000"})  # deprecated 2022-11-14


# The server -------------------------------------------------------------------------------


class Front:
    """What stands between clients and the API: it records each request and its answer,
    takes paths with a trailing slash as Rails does, counts requests made with a user token
    against the account's rate limit (headers on every such answer, 429 past the limit) and
    applies the faults planned for `POST /api/v1/statuses`."""

    def __init__(self, api: ASGIApp, state: MastodonState) -> None:
        self.api = api
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.api(scope, receive, send)
            return
        scope = _without_trailing_slash(scope)
        record = self._record(scope)
        send = _recording(send, record)
        reading = self._rate(scope)
        if reading is not None:
            send = _adding_headers(send, reading.headers())
            if reading.exceeded:
                await answer({"error": "Too many requests"}, 429)(scope, receive, send)
                return
        await self._serve(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        match self._planned_fault(scope):
            case None:
                await self.api(scope, receive, send)
            case FailBeforeCreating(status=status):
                await answer({"error": _failure_message(status)}, status)(scope, receive, send)
            case DropAfterCreating():
                await self.api(scope, receive, _discard)
                await _hang_up(receive)
            case AnswerLate(delay_s=delay_s):
                await self.api(scope, receive, _delayed(send, delay_s))

    def _record(self, scope: Scope) -> RecordedRequest:
        headers = dict(Headers(scope=scope).items())
        query = scope.get("query_string", b"").decode("latin-1")
        record = RecordedRequest(scope["method"], scope["path"], query, headers)
        self.state.requests.append(record)
        return record

    def _rate(self, scope: Scope) -> RateReading | None:
        token = self.state.token_for(Headers(scope=scope).get("authorization"))
        if not scope["path"].startswith("/api/") or token is None or token.account is None:
            return None
        config = self.state.config
        now_us = self.state.clock.now_us()
        return self.state.rate_counter.count(
            token.account, now_us, config.rate_limit, config.rate_limit_period_s
        )

    def _planned_fault(self, scope: Scope) -> StatusFault | None:
        posting = scope["method"] == "POST" and scope["path"] == "/api/v1/statuses"
        return self.state.faults.popleft() if posting and self.state.faults else None


def _failure_message(status: int) -> str:
    if status == 503:
        return "There was a temporary problem serving your request, please try again"
    return HTTPStatus(status).phrase


def _without_trailing_slash(scope: Scope) -> Scope:
    path: str = scope["path"]
    if path == "/" or not path.endswith("/"):
        return scope
    return {**scope, "path": path.rstrip("/"), "raw_path": path.rstrip("/").encode()}


def _recording(send: Send, record: RecordedRequest) -> Send:
    async def recorded(message: Message) -> None:
        if message["type"] == "http.response.start":
            record.status = message["status"]
        await send(message)

    return recorded


def _adding_headers(send: Send, headers: Mapping[str, str]) -> Send:
    extra = [(name.lower().encode(), value.encode()) for name, value in headers.items()]

    async def added(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return added


def _delayed(send: Send, delay_s: float) -> Send:
    async def late(message: Message) -> None:
        if message["type"] == "http.response.start":
            await asyncio.sleep(delay_s)
        await send(message)

    return late


async def _discard(message: Message) -> None:
    """Where the answer of a dropped connection goes."""


async def _hang_up(receive: Receive) -> None:
    """Close the connection without answering. ASGI gives an application no way to do so;
    uvicorn's request cycle, whose method `receive` is, holds the transport, so the fault
    reaches it there (and says so if uvicorn ever changes). Waiting for the disconnect
    tells uvicorn the client is gone, so it neither answers 500 nor logs an error."""
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    abort: Callable[[], None] | None = getattr(transport, "abort", None)
    if abort is None:
        raise RuntimeError("the server's connection cannot be reached to drop it")
    abort()
    while (await receive())["type"] != "http.disconnect":
        pass


async def _api_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiError)
    return error.response()


async def _http_error(request: Request, error: Exception) -> Response:
    """Unknown paths and methods answer JSON, as Mastodon's API does."""
    assert isinstance(error, HTTPException)
    return answer({"error": HTTPStatus(error.status_code).phrase}, error.status_code)


def create_app(state: MastodonState) -> ASGIApp:
    """The Mastodon API over `state`, as an ASGI application."""
    guard = Guard(state)
    routes = [
        *OAuthEndpoints(state, guard).routes(),
        *AccountEndpoints(state, guard).routes(),
        *StatusEndpoints(state, guard).routes(),
        *MediaEndpoints(state, guard).routes(),
        *SearchEndpoints(state, guard).routes(),
        *InstanceEndpoints(state).routes(),
    ]
    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
        ApiError: _api_error,
        HTTPException: _http_error,
    }
    return Front(Starlette(routes=routes, exception_handlers=handlers), state)


@dataclass(frozen=True)
class MastodonServer:
    url: str
    state: MastodonState


@asynccontextmanager
async def mastodon_server(
    state: MastodonState | None = None, port: int = 0
) -> AsyncIterator[MastodonServer]:
    """Serve the API over `state` (a fresh one by default) on 127.0.0.1 while the block
    runs, on `port` (a free one by default; pass `free_port()` beforehand to restart a
    server on the same port)."""
    state = state if state is not None else MastodonState()
    async with _serving(create_app(state), port) as url:
        yield MastodonServer(url, state)


@asynccontextmanager
async def _serving(app: ASGIApp, port: int) -> AsyncIterator[str]:
    """`tests.conftest.serving`, but idle connections are kept `KEEP_ALIVE_S`, as a
    Mastodon deployment keeps them. With uvicorn's default of 5 s the server closes a
    connection just as Mastodon.py reuses it after its 5 s wait between media polls, and
    the client meets a reset in about one run in five."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
        timeout_graceful_shutdown=5, timeout_keep_alive=KEEP_ALIVE_S,
    )  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
