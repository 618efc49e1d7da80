"""Which addresses webhooks may reach, and requests pinned to the address checked."""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

import httpx
import pytest

from hubbub.kernel.destinations import (
    AddressRefused,
    CheckedSession,
    checked_client,
    pinned,
    refusal,
    resolve,
    send_checked,
)


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.2", "a loopback address"),
        ("10.0.0.1", "a private address"),
        ("172.16.5.4", "a private address"),
        ("192.168.1.1", "a private address"),
        ("100.64.0.1", "a non-public address"),  # shared address space (carrier NAT)
        ("169.254.169.254", "a link-local address"),
        ("0.0.0.0", "an unspecified address"),
        ("239.1.2.3", "a multicast address"),
        ("::", "an unspecified address"),
        ("::1", "a loopback address"),
        ("fe80::1", "a link-local address"),
        ("fc00::1", "a private address"),
        ("ff02::1", "a multicast address"),
        ("::ffff:10.0.0.1", "a private address"),  # IPv4-mapped
        ("2002:7f00:1::1", "a loopback address"),  # 6to4 of 127.0.0.1
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "a loopback address"),  # Teredo, 127.0.0.1
        ("93.184.216.34", None),
        ("2606:2800:220:1:248:1893:25c8:1946", None),
    ],
)
def test_only_public_addresses_are_reachable(address: str, why: str | None) -> None:
    assert refusal(ipaddress.ip_address(address)) == why


def test_an_allowed_network_is_reachable_and_only_it() -> None:
    allowed = [ipaddress.ip_network("10.1.0.0/16")]
    assert refusal(ipaddress.ip_address("10.1.2.3"), allowed) is None
    assert refusal(ipaddress.ip_address("10.2.0.1"), allowed) == "a private address"


async def test_a_name_is_refused_if_any_address_it_resolves_to_is() -> None:
    with pytest.raises(AddressRefused, match=r"localhost \(127\.0\.0\.1\) is a loopback"):
        await resolve("localhost", 80)
    assert await resolve("127.0.0.1", 80, [ipaddress.ip_network("127.0.0.0/8")]) == [
        ipaddress.ip_address("127.0.0.1")
    ]


async def test_a_pinned_request_goes_to_the_address_checked_as_the_host_it_names() -> None:
    async with httpx.AsyncClient() as client:
        request = client.build_request("POST", "https://hooks.example:8443/a?b=1", content=b"{}")
        sent = pinned(client, request, ipaddress.ip_address("2001:db8::5"))
    assert str(sent.url) == "https://[2001:db8::5]:8443/a?b=1"
    assert sent.headers["Host"] == "hooks.example:8443"
    assert sent.extensions["sni_hostname"] == "hooks.example"
    assert sent.content == b"{}"


async def _server(handle: Any) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_the_checked_client_sends_as_the_host_named_and_says_whether_it_sent() -> None:
    """What a publisher decides on: a refused connection sent nothing (safe to send
    again), a connection dropped after the request went out may have been acted on."""
    loopback = [ipaddress.ip_network("127.0.0.0/8")]

    async def answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        host = next(line for line in head.split("\r\n") if line.lower().startswith("host:"))
        body = host.encode()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    async def hangs_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    good, good_port = await _server(answers)
    bad, bad_port = await _server(hangs_up)
    closed, closed_port = await _server(hangs_up)
    closed.close()
    await closed.wait_closed()
    client = checked_client(timeout_s=5)
    try:
        async with good, bad:
            answer = await send_checked(
                client, client.build_request("GET", f"http://localhost:{good_port}/"), loopback
            )
            assert answer.text == f"host: localhost:{good_port}"
            with pytest.raises(httpx.ReadError):
                await send_checked(
                    client, client.build_request("POST", f"http://127.0.0.1:{bad_port}/"), loopback
                )
            with pytest.raises(httpx.ConnectError):
                await send_checked(
                    client,
                    client.build_request("POST", f"http://127.0.0.1:{closed_port}/"),
                    loopback,
                )
            with pytest.raises(AddressRefused):
                await send_checked(
                    client, client.build_request("GET", f"http://127.0.0.1:{good_port}/")
                )
    finally:
        await client.aclose()


async def test_the_checked_session_connects_only_where_allowed_and_says_whether_it_sent() -> None:
    """As the checked client: a name is checked as it resolves (its connection goes to
    the address checked, as the host named), an address written out before its request."""
    loopback = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]

    async def answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        host = next(line for line in head.split("\r\n") if line.lower().startswith("host:"))
        body = host.lower().encode()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    async def hangs_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    good, good_port = await _server(answers)
    bad, bad_port = await _server(hangs_up)
    closed, closed_port = await _server(hangs_up)
    closed.close()
    await closed.wait_closed()
    allowed, strict = CheckedSession(5, loopback), CheckedSession(5)
    try:
        async with good, bad:
            answer = await allowed.request("GET", f"http://localhost:{good_port}/")
            assert answer.text == f"host: localhost:{good_port}"
            with pytest.raises(httpx.ReadError):
                await allowed.request("POST", f"http://127.0.0.1:{bad_port}/", data=b"x")
            with pytest.raises(httpx.ConnectError):
                await allowed.request("POST", f"http://127.0.0.1:{closed_port}/")
            hosts = ("localhost", "127.0.0.1", "2130706433", "[::1]")
            for url in (f"http://{host}:{good_port}/" for host in hosts):
                with pytest.raises(AddressRefused):
                    await strict.request("GET", url)
    finally:
        await allowed.close()
        await strict.close()
