"""The SMTP mailer as the settings build it, against a real SMTP server (aiosmtpd) that
speaks TLS (STARTTLS, or from the first byte) with a certificate of a CA made here, and
asks for a password."""

from __future__ import annotations

import datetime
import email
import ipaddress
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hubbub.bootstrap import open_mailer
from hubbub.notifications.ports import Email, MailUnavailable
from hubbub.settings import Settings
from tests.support.net import free_port

USER, PASSWORD = "hubbub", "s3cret-relay"


@dataclass
class Mailbox:
    received: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(email.message_from_bytes(envelope.content, policy=default))
        return "250 OK"


def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    known = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(), PASSWORD.encode(),
    )  # fmt: skip
    return AuthResult(success=known, handled=False)  # not handled: aiosmtpd answers 535


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _valid_for_a_day(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePublicKey, serial: int
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key)
        .serial_number(serial).not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
    )  # fmt: skip


@dataclass(frozen=True)
class Certificates:
    ca: Path
    chain: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.chain, self.key)
        return context


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A CA of the test's own, and a certificate it signed for 127.0.0.1."""
    where = tmp_path_factory.mktemp("tls")
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (
        _valid_for_a_day(_name("Test relay CA"), _name("Test relay CA"), ca_key.public_key(), 1)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    server = (
        _valid_for_a_day(_name("localhost"), ca.subject, key.public_key(), 2)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    made = Certificates(where / "ca.pem", where / "server.pem", where / "server.key")
    made.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    made.chain.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    made.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )  # fmt: skip
    return made


@dataclass
class Relay:
    mailbox: Mailbox
    port: int


def relay(certificates: Certificates, *, implicit_tls: bool) -> Iterator[Relay]:
    box, port = Mailbox(), free_port()
    # aiosmtpd cannot tell a socket is TLS from its first byte: it would not offer AUTH
    # there, so that relay takes mail without a password.
    tls: dict[str, Any] = (
        {"ssl_context": certificates.server_context()} if implicit_tls
        else {"tls_context": certificates.server_context(), "require_starttls": True,
              "authenticator": authenticator, "auth_required": True}
    )  # fmt: skip
    controller = Controller(box, hostname="127.0.0.1", port=port, **tls)
    controller.start()
    try:
        yield Relay(box, port)
    finally:
        controller.stop()


@pytest.fixture
def starttls(certificates: Certificates) -> Iterator[Relay]:
    yield from relay(certificates, implicit_tls=False)


@pytest.fixture
def implicit(certificates: Certificates) -> Iterator[Relay]:
    yield from relay(certificates, implicit_tls=True)


MESSAGE = Email(
    tenant="acme", user="u-ann", to="ann@acme.example", subject="Bob approved “Launch”",
    text="Bob approved “Launch”.\n\nOpen it: https://hubbub.example/publish/posts/p1\n",
    message_id="<abc@hubbub.example>",
)  # fmt: skip


def mailer_for(tmp_path: Path, port: int, **settings: Any) -> Any:
    chosen = {"smtp_username": USER, "smtp_password": PASSWORD, **settings}
    mailer = open_mailer(
        Settings(data_dir=tmp_path, smtp_host="127.0.0.1", smtp_port=port,
                 smtp_from="Hubbub <notices@hubbub.example>", **chosen)
    )  # fmt: skip
    assert mailer is not None
    return mailer


async def test_starttls_and_a_password_as_the_settings_say(
    tmp_path: Path, starttls: Relay, certificates: Certificates
) -> None:
    mailer = mailer_for(tmp_path, starttls.port, smtp_ca_file=certificates.ca)
    await mailer.send(MESSAGE)
    (received,) = starttls.mailbox.received
    assert (received["To"], received["Subject"]) == ("ann@acme.example", "Bob approved “Launch”")
    assert received["Message-ID"] == "<abc@hubbub.example>"
    assert received.get_content().replace("\r\n", "\n") == MESSAGE.text


async def test_tls_from_the_first_byte(
    tmp_path: Path, implicit: Relay, certificates: Certificates
) -> None:
    mailer = mailer_for(
        tmp_path, implicit.port, smtp_security="ssl", smtp_ca_file=certificates.ca,
        smtp_username=None, smtp_password=None,
    )  # fmt: skip
    await mailer.send(MESSAGE)
    assert [m["To"] for m in implicit.mailbox.received] == ["ann@acme.example"]


async def test_a_wrong_password_or_an_untrusted_server_is_tried_again_later(
    tmp_path: Path, starttls: Relay, certificates: Certificates
) -> None:
    wrong = mailer_for(tmp_path, starttls.port, smtp_password="guess", smtp_ca_file=certificates.ca)
    with pytest.raises(MailUnavailable, match="credentials were refused"):
        await wrong.send(MESSAGE)
    untrusted = mailer_for(tmp_path, starttls.port)  # the system's CAs only
    with pytest.raises(MailUnavailable, match=r"CERTIFICATE_VERIFY_FAILED|certificate"):
        await untrusted.send(MESSAGE)
    assert starttls.mailbox.received == []
