"""The `Mailer` over SMTP (aiosmtplib): one connection a message, plain text in UTF-8.

`security` is `starttls` (upgrade the connection, refusing a server that cannot), `ssl`
(TLS from the first byte, port 465's way) or `none` (a relay on loopback). A 5xx answer
to the message or its recipient is `MailRejected`; anything else that keeps the message
from being accepted (no connection, a timeout, a 4xx, credentials refused: a setting to
fix, after which it goes) is `MailUnavailable`.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Literal

import aiosmtplib

from hubbub.notifications.ports import Email, MailRejected, MailUnavailable

Security = Literal["none", "starttls", "ssl"]


@dataclass(frozen=True)
class SmtpMailer:
    """Sends through the SMTP server at `host`:`port` as `sender`."""

    host: str
    port: int
    sender: str
    security: Security = "starttls"
    username: str | None = None
    password: str | None = None
    timeout_s: float = 10.0
    ca_file: str | None = None
    """Certificates trusted for the server besides the system's (a private relay's CA)."""

    async def send(self, email: Email) -> None:
        try:
            await aiosmtplib.send(
                message_of(email, self.sender), hostname=self.host, port=self.port,
                username=self.username, password=self.password, timeout=self.timeout_s,
                use_tls=self.security == "ssl", start_tls=self.security == "starttls",
                cert_bundle=self.ca_file,
            )  # fmt: skip
        except aiosmtplib.SMTPRecipientsRefused as error:
            codes = [refused.code for refused in error.recipients]
            reason = "; ".join(f"{r.code} {r.message}" for r in error.recipients)
            if all(code >= 500 for code in codes):
                raise MailRejected(f"the server refused {email.to}: {reason}") from error
            raise MailUnavailable(f"the server deferred {email.to}: {reason}") from error
        except aiosmtplib.SMTPAuthenticationError as error:
            raise MailUnavailable(f"the SMTP credentials were refused: {error}") from error
        except aiosmtplib.SMTPResponseException as error:
            said = f"the server answered {error.code} {error.message}"
            if error.code >= 500:
                raise MailRejected(said) from error
            raise MailUnavailable(said) from error
        except (aiosmtplib.SMTPException, OSError) as error:
            where = f"{self.host}:{self.port}"
            raise MailUnavailable(f"the SMTP server at {where} failed: {error}") from error


def message_of(email: Email, sender: str) -> EmailMessage:
    """The email as a MIME message: plain text, UTF-8, with a stable Message-ID."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = email.to
    message["Subject"] = email.subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = email.message_id
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to it
    message.set_content(email.text, subtype="plain", charset="utf-8")
    return message
