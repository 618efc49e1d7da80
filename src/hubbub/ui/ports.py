"""The web app's one port: the platform's own HTTP API, reached through the gateway.

The web app owns no data. Every page is made from answers of the public API, asked with
the signed-in person's session token, so the gateway applies the same authentication,
limits, roles, flags and tenant isolation to a page as to any API client.

Contract (`hubbub.ui.http.GatewayApi` meets it):
- `call` sends one request and answers the status and the body, whatever the status:
  a 4xx is an answer for the page to show, not an error. Its body is `json`, or
  `content` (bytes sent as they are, `application/octet-stream`), or none.
- `Unreachable` when the gateway cannot be reached or does not answer in time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


class Unreachable(Exception):
    """The platform's API could not be reached; the message says where and why."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        import json

        return json.loads(self.body) if self.body else None

    def detail(self) -> str:
        """What the API said went wrong, as a sentence for a person."""
        try:
            found = self.json()
        except ValueError:
            return self.body.decode(errors="replace")[:300]
        detail = found.get("detail") if isinstance(found, dict) else None
        if isinstance(detail, list):  # validation errors: each with where and what
            return "; ".join(
                f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg', '')}"
                for d in detail
            )
        return str(detail or f"the platform answered {self.status}")


class PlatformApi(Protocol):
    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        params: dict[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
    ) -> Answer: ...

    async def close(self) -> None: ...
