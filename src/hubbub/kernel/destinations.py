"""Where the platform may send a request a tenant named: public addresses only, unless
allow-listed. A webhook's URL, a channel's PDS or Mastodon instance.

Such a URL is a tenant's input that makes the platform send requests, so without a
check a tenant could reach the platform's own network (SSRF): loopback, private,
link-local, multicast, reserved and unspecified addresses, in IPv4 and IPv6, however
written (`::ffff:127.0.0.1`, `2130706433`, `0x7f000001`, `127.1`, `localhost`).

- `check_url` refuses, when a webhook or channel is added, a URL whose host is such an address
  written out, or a `localhost` name (no DNS is asked then: the answer could change).
- `resolve` is asked at each request: it resolves the host and refuses it if any of
  its addresses is refused, and `pinned` sends the request to the address checked, with
  the Host header and TLS server name of the URL, so a DNS answer that changes between
  the check and the connection (rebinding) cannot swap another address in.
- `CheckedSession` does the same with aiohttp alone: its resolver is `resolve`, so every
  connection it opens goes to an address checked as it connects (the Host header and TLS
  server name are the URL's), and a host written out as an address, which aiohttp does
  not resolve, is checked before its request. No copy of the request is needed.

An operator allows more with `HUBBUB_WEBHOOK_ALLOWED_NETWORKS` and
`HUBBUB_PUBLISH_ALLOWED_NETWORKS` (the tests allow loopback to reach their servers).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult
from httpx_aiohttp import AiohttpTransport

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

RESOLVED_FOR_S: Final = 30.0
RESOLVED_AT_MOST: Final = 4096
_RESOLVED: dict[tuple[str, int], tuple[float, list[Address]]] = {}
ALLOWED_HINT: Final = "alerts go to public addresses only (HUBBUB_WEBHOOK_ALLOWED_NETWORKS)"
_REFUSED: Final[tuple[tuple[str, Callable[[Address], bool]], ...]] = (
    ("an unspecified", lambda a: a.is_unspecified),
    ("a loopback", lambda a: a.is_loopback),
    ("a link-local", lambda a: a.is_link_local),
    ("a multicast", lambda a: a.is_multicast),
    ("a reserved", lambda a: a.is_reserved),
    ("a private", lambda a: a.is_private),
    ("a non-public", lambda a: not a.is_global),
)
"""Kinds of address refused, the first that matches naming why (`is_global` last: it
also catches shared and documentation ranges the others do not name)."""
# inet_aton's forms of IPv4 (`127.1`, `2130706433`, `0x7f.1`, `0177.0.0.1`), which
# resolvers accept as addresses although URL parsers take them for names.
_NUMERIC_IPV4: Final = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}\.?$", re.I)


class AddressRefused(ValueError):
    """A host is, or resolves to, an address the platform may not send to."""


def check_url(url: str, allowed: Sequence[Network] = (), hint: str = ALLOWED_HINT) -> str:
    """`url`, if requests may go to it; otherwise `ValueError` saying why (and `hint`,
    what is allowed). The host is checked as written; `resolve` checks what it resolves
    to at each request."""
    if not url.startswith(("https://", "http://")):
        raise ValueError("the url must start with https:// or http://")
    try:
        host = httpx.URL(url).host
    except httpx.InvalidURL as error:
        raise ValueError(f"the url is not valid: {error}") from error
    if not host:
        raise ValueError("the url has no host")
    for address in _written_addresses(host):
        refuse(host, address, allowed, hint)
    return url


def _written_addresses(host: str) -> list[Address]:
    """The addresses `host` names without asking DNS: the one it writes out, or those
    of a `localhost` name (RFC 6761: always loopback); none for another name."""
    name = host.rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    address = literal_address(host)
    return [] if address is None else [address]


def literal_address(host: str) -> Address | None:
    """The address `host` writes out (IPv6, dotted IPv4, or a numeric form resolvers
    read as IPv4), None when it is a name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    if _NUMERIC_IPV4.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
        except OSError:
            raise AddressRefused(f"{host} is not a valid address") from None
    return None


def refusal(address: Address, allowed: Sequence[Network] = ()) -> str | None:
    """Why alerts may not go to `address` ("a private address"), None when they may.
    An IPv4 address carried in IPv6 (mapped, 6to4, Teredo) is judged as itself."""
    if any(address in network for network in allowed):
        return None
    inner = _embedded_ipv4(address)
    if inner is not None and inner != address:
        return refusal(inner, allowed)
    for kind, matches in _REFUSED:
        if matches(address):
            return f"{kind} address"
    return None


def refuse(
    host: str, address: Address, allowed: Sequence[Network], hint: str = ALLOWED_HINT
) -> None:
    """Raise `AddressRefused` naming `host` and why, if `address` is refused."""
    why = refusal(address, allowed)
    if why is not None:
        judged = _embedded_ipv4(address) or address
        shown = host if host == str(judged) else f"{host} ({judged})"
        raise AddressRefused(f"{shown} is {why}: {hint}")


def _embedded_ipv4(address: Address) -> Address | None:
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    return address.teredo[1] if address.teredo is not None else None


async def resolve(
    host: str, port: int, allowed: Sequence[Network] = (), hint: str = ALLOWED_HINT
) -> list[Address]:
    """Every address `host` resolves to, checked: `AddressRefused` if any is refused
    (a name with one private address among public ones is refused whole, as a
    resolver could hand out either) or if it resolves to none."""
    addresses = await _addresses(host, port)
    for address in addresses:
        refuse(host, address, allowed, hint)
    return addresses


async def _addresses(host: str, port: int) -> list[Address]:
    """What `host` resolves to: an address written out as itself, a name as the resolver
    answered in the last `RESOLVED_FOR_S` (a publisher sends hundreds of requests a
    second to one instance; each asking the resolver, in a thread, cost more than the
    request). What is kept is only ever used checked, and sent to as checked."""
    literal = literal_address(host)
    if literal is not None:
        return [literal]
    now = time.monotonic()
    kept = _RESOLVED.get((host, port))
    if kept is not None and kept[0] > now:
        return kept[1]
    loop = asyncio.get_running_loop()
    try:
        found = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise AddressRefused(f"{host} does not resolve: {error.strerror}") from error
    addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in found))
    if not addresses:
        raise AddressRefused(f"{host} resolves to no address")
    if len(_RESOLVED) >= RESOLVED_AT_MOST:
        _RESOLVED.clear()
    _RESOLVED[(host, port)] = (now + RESOLVED_FOR_S, addresses)
    return addresses


def pinned(client: httpx.AsyncClient, request: httpx.Request, address: Address) -> httpx.Request:
    """`request` sent to `address`, checked, instead of whatever the host resolves to
    when connecting: the URL names the address, the Host header and (for https) the
    TLS server name, which the certificate is verified against, keep the host."""
    url = request.url
    headers = request.headers.copy()
    headers["Host"] = url.netloc.decode("ascii")
    extensions = dict(request.extensions)
    if url.scheme == "https" and literal_address(url.host) is None:
        extensions["sni_hostname"] = url.host
    return client.build_request(
        request.method,
        url.copy_with(host=str(address)),
        headers=headers,
        content=request.content,
        extensions=extensions,
    )


async def send_checked(
    client: httpx.AsyncClient,
    request: httpx.Request,
    allowed: Sequence[Network] = (),
    hint: str = ALLOWED_HINT,
) -> httpx.Response:
    """`request`, sent only if its host resolves to addresses it may go to, and to the
    address checked (`pinned`); `AddressRefused` otherwise. Redirects are not followed."""
    port = request.url.port or (443 if request.url.scheme == "https" else 80)
    addresses = await resolve(request.url.host, port, allowed, hint)
    return await client.send(pinned(client, request, addresses[0]), follow_redirects=False)


def checked_client(timeout_s: float, connections: int = 256) -> httpx.AsyncClient:
    """An httpx client for `send_checked`, whose connections are aiohttp's.

    httpx's own pool looks at every pooled connection for every request (an idle one
    with a select call): at 64 requests at once to one server it cost 1.1 to 1.8 ms of
    CPU a request, aiohttp's pool 0.18 ms. Redirects are never followed, and nothing is
    read from the environment (proxies): a request goes where it was checked to go."""
    transport = _Transport(limits=httpx.Limits(max_connections=connections), trust_env=False)
    return httpx.AsyncClient(
        transport=transport, timeout=timeout_s, follow_redirects=False, trust_env=False
    )


class _Transport(AiohttpTransport):
    """aiohttp's transport, its errors sorted as httpx sorts them where it matters to a
    caller: whether the request may have reached the server. A refused or timed-out
    connection sent nothing (`ConnectError`, `ConnectTimeout`); anything after it may
    have (`ReadTimeout`, `ReadError`), so the outcome is unknown."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except httpx.TransportError as error:
            raise _sorted(error.__cause__ or error) from error
        except (TimeoutError, aiohttp.ClientError) as error:
            raise _sorted(error) from error


def _sorted(error: BaseException) -> httpx.TransportError:
    said = str(error) or type(error).__name__
    if isinstance(error, aiohttp.ClientConnectorError):
        return httpx.ConnectError(said)
    if isinstance(error, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(said)
    if isinstance(error, aiohttp.ServerTimeoutError | TimeoutError):
        return httpx.ReadTimeout(said)
    return httpx.ReadError(said)


@dataclass(frozen=True)
class Answer:
    """A server's answer, read whole."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class CheckedSession:
    """Requests sent with aiohttp only to addresses they may go to: `AddressRefused`
    otherwise, and errors sorted as `checked_client`'s are (`ConnectError` and
    `ConnectTimeout`: nothing was sent; `ReadError`, `ReadTimeout`: it may have been).
    Redirects are not followed, nothing is read from the environment (proxies).

    Sending through the httpx client (`send_checked`) cost a publisher 0.2 ms of CPU a
    status in httpx's own layers (the request built twice, pinned, then translated for
    aiohttp); this sends aiohttp's request as it is."""

    def __init__(
        self,
        timeout_s: float,
        allowed: Sequence[Network] = (),
        hint: str = ALLOWED_HINT,
        connections: int = 256,
    ) -> None:
        self._allowed = tuple(allowed)
        self._hint = hint
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=timeout_s, sock_connect=timeout_s, sock_read=timeout_s
        )
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None
        self._checked: set[str] = set()
        """URLs whose host was checked as written: an address written out (its verdict
        cannot change), or a name (checked by the resolver as a connection is opened)."""

    def _opened(self) -> aiohttp.ClientSession:
        # Made at the first request, in the running loop, not when the adapter is built.
        if self._session is None:
            resolver = _CheckingResolver(self._allowed, self._hint)
            connector = aiohttp.TCPConnector(
                limit=self._connections, resolver=resolver, use_dns_cache=False
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, trust_env=False, auto_decompress=True
            )
        return self._session

    async def request(self, method: str, url: str, **kwargs: Any) -> Answer:
        """`method` `url` with aiohttp's `kwargs` (`json`, `data`, `params`, `headers`),
        its answer read whole."""
        await self._check_written(url)
        try:
            async with self._opened().request(
                method, url, allow_redirects=False, **kwargs
            ) as response:
                return Answer(response.status, response.headers, await response.read())
        except (TimeoutError, aiohttp.ClientError) as error:
            raise _sorted(error) from error

    async def _check_written(self, url: str) -> None:
        """A host written out as an address checked: aiohttp connects to it without
        asking the resolver."""
        if url in self._checked:
            return
        parsed = httpx.URL(url)
        if parsed.scheme not in ("https", "http") or not parsed.host:
            raise AddressRefused(f"{url} is not a URL to send to")
        if literal_address(parsed.host) is not None:
            port = parsed.port or (443 if parsed.scheme == "https" else 80)
            await resolve(parsed.host, port, self._allowed, self._hint)
        if len(self._checked) >= RESOLVED_AT_MOST:
            self._checked.clear()
        self._checked.add(url)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class _CheckingResolver(AbstractResolver):
    """aiohttp's resolver, through `resolve`: a name resolving to an address refused is
    `AddressRefused`, and a connection goes only to addresses checked."""

    def __init__(self, allowed: Sequence[Network], hint: str) -> None:
        self._allowed = allowed
        self._hint = hint

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await resolve(host, port, self._allowed, self._hint)
        return [_resolved(host, address, port) for address in addresses]

    async def close(self) -> None:
        return None


def _resolved(host: str, address: Address, port: int) -> ResolveResult:
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    return ResolveResult(hostname=host, host=str(address), port=port, family=family, proto=0,
                         flags=socket.AI_NUMERICHOST)  # fmt: skip
