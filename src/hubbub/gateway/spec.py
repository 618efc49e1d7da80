"""The answers every route of the gateway may give besides its own, in the API spec.

Each service describes its successes and its validation errors; the gateway adds what
it answers itself (401 without a valid key, 403 for a role or a flag, 429 over a rate
limit, 503 and 504 when a service is down or slow), and the errors routes raise by hand
(400 for a body that is not JSON, 404 for an id, 409 for a name taken, 413 for a body
too large), all as `{"detail": "..."}`.
"""

from __future__ import annotations

from typing import Any, Final

ERROR: Final = {
    "title": "Error",
    "type": "object",
    "required": ["detail"],
    "properties": {"detail": {"type": "string", "description": "What went wrong, for a person."}},
}
_RETRY_AFTER: Final = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds."}}
GATEWAY_ANSWERS: Final = {
    "401": ("No API key, or one that is unknown, revoked or malformed.", {}),
    "403": ("The key's role, or a feature flag, does not allow this.", {}),
    "429": ("Over the key's or the tenant's rate limit.", _RETRY_AFTER),
}
SERVICE_ANSWERS: Final = {
    "503": ("The service is down or its circuit is open.", _RETRY_AFTER),
    "504": ("The service did not answer in time.", {}),
}
METHODS: Final = ("get", "put", "post", "delete", "patch", "head", "options")


def describe_answers(spec: dict[str, Any], service_prefixes: tuple[str, ...]) -> None:
    """Add the gateway's answers (and services' 404, 409 and string 422) to `spec`."""
    spec.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR
    for path, item in spec.get("paths", {}).items():
        service = path.startswith(service_prefixes)
        for method, operation in item.items():
            if method not in METHODS:
                continue
            answers = operation.setdefault("responses", {})
            wanted = {**GATEWAY_ANSWERS, **(SERVICE_ANSWERS if service else {})}
            wanted["404"] = ("No such thing, for this tenant.", {})
            if method in ("post", "put"):
                wanted["409"] = ("It exists already.", {})
            if "requestBody" in operation or method in ("post", "put", "patch"):
                wanted["400"] = ("The body could not be read (not JSON, say).", {})
                wanted["413"] = ("The body is larger than this route takes.", {})
            for status, (description, headers) in wanted.items():
                answers.setdefault(status, _answer(description, headers))
            if "422" in answers:
                _also_plain(answers["422"])


def _answer(description: str, headers: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if headers:
        answer["headers"] = headers
    return answer


def _also_plain(answer: dict[str, Any]) -> None:
    """A 422 is FastAPI's list of errors, or one message a route raised itself."""
    content = answer.setdefault("content", {}).setdefault("application/json", {})
    schema = content.get("schema")
    if schema is not None and "anyOf" not in schema:
        content["schema"] = {"anyOf": [schema, {"$ref": "#/components/schemas/Error"}]}
