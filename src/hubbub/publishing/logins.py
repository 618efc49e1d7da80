"""Connecting a Mastodon account by its owner's approval: the OAuth authorization code
flow (with PKCE), as Mastodon documents it, instead of a pasted access token.

1. `start`: Hubbub registers itself with the instance (`POST /api/v1/apps`) and answers
   the address where the account's owner approves it, and a `state`.
2. The owner approves there; the instance hands back a `code`: to `redirect_uri` (the
   web app's callback), or shown on a page for the out-of-band URI (the CLI asks for it).
3. `finish`: the code is exchanged for the account's token (`POST /oauth/token`, with the
   PKCE verifier), and the channel is added with it, sealed like any credential.

Nothing is kept between the two steps but `state` itself: the instance's client id and
secret, the PKCE verifier, the tenant and the time it ends are sealed in it
(`SecretBox`), so it can be neither read nor forged, nor finished by another tenant, nor
after `LOGIN_S`; and several replicas need share nothing for it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Final

from hubbub.kernel.clock import Clock
from hubbub.kernel.destinations import check_url
from hubbub.kernel.sealing import PREFIX, SealError, SecretBox
from hubbub.publishing.mastodon import MastodonNetwork
from hubbub.publishing.ports import Channel, Invalid, OutcomeUnknown, Permanent, Transient
from hubbub.publishing.service import HINT, Publishing, zone

OUT_OF_BAND: Final = "urn:ietf:wg:oauth:2.0:oob"
"""The redirect URI for which the instance shows the code to copy (the CLI)."""
LOGIN_S: Final = 15 * 60
"""How long an approval may take, from `start` to `finish`."""


@dataclass(frozen=True)
class Login:
    authorize_url: str
    """Where the account's owner approves Hubbub."""
    state: str
    """Given back to `finish` with the code (sealed: opaque to everyone else)."""


class MastodonLogins:
    def __init__(self, publishing: Publishing, mastodon: MastodonNetwork, clock: Clock) -> None:
        self._publishing = publishing
        self._mastodon = mastodon
        self._box: SecretBox = publishing.box
        self._clock = clock

    async def start(
        self, tenant: str, service: str, time_zone: str = "UTC", redirect_uri: str = OUT_OF_BAND
    ) -> Login:
        """Register with `service` and answer where its account's owner approves."""
        zone(time_zone)
        service = service.rstrip("/")
        try:
            check_url(service, self._publishing.allowed, HINT)
        except ValueError as error:
            raise Invalid(f"{service!r}: {error}") from error
        try:
            client_id, client_secret = await self._mastodon.register_app(service, redirect_uri)
        except (Permanent, Transient, OutcomeUnknown) as error:
            raise Invalid(f"{service} did not register Hubbub: {error}") from error
        verifier = secrets.token_urlsafe(48)
        state = self._box.seal(
            json.dumps({
                "tenant": tenant, "service": service, "zone": time_zone, "id": client_id,
                "secret": client_secret, "verifier": verifier, "redirect": redirect_uri,
                "until_us": self._clock.now_us() + LOGIN_S * 1_000_000,
            })
        )  # fmt: skip
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        url = self._mastodon.authorize_url(
            service, client_id, redirect_uri, state, challenge.rstrip(b"=").decode()
        )
        return Login(url, state)

    async def finish(self, tenant: str, state: str, code: str) -> Channel:
        """Exchange the owner's `code` for the account's token, and add the channel."""
        try:
            # Only a sealed state: `open` gives back a value never sealed as it is.
            login = json.loads(self._box.open(state)) if state.startswith(PREFIX) else {}
        except (SealError, ValueError):
            login = {}
        if login.get("tenant") != tenant:
            raise Invalid("this approval is not one Hubbub started: start again")
        if self._clock.now_us() > login["until_us"]:
            raise Invalid(f"the approval took longer than {LOGIN_S // 60} minutes: start again")
        service = login["service"]
        try:
            token, account = await self._mastodon.exchange_code(
                service, (login["id"], login["secret"]), login["redirect"], code.strip(),
                login["verifier"],
            )  # fmt: skip
        except (Permanent, Transient, OutcomeUnknown) as error:
            raise Invalid(f"{service} did not grant access: {error}") from error
        return await self._publishing.add_channel(
            tenant, "mastodon", account, service, {"access_token": token}, login["zone"]
        )
