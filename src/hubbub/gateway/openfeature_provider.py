"""Hubbub's flags behind the OpenFeature SDK, so code asks `client.get_boolean_value(...)`.

The evaluation context names who asks: `targeting_key` is the tenant id, and the
optional attribute `subject` (a user or key id) rolls out a tenant's own flags within
the tenant. Answers come from a `FlagBook` in memory, never from the log, so resolving
is synchronous and cheap; the async resolutions of `AbstractProvider` call these.

Hubbub's flags are boolean: asking for a string, a number or an object answers the
default with `TYPE_MISMATCH`. An unknown flag answers the default with reason `DEFAULT`
and `FLAG_NOT_FOUND`, so a feature not yet flagged keeps the behaviour its code chose.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeVar

from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType, Reason
from openfeature.provider import AbstractProvider, Metadata

from hubbub.gateway.flags import FlagBook

T = TypeVar("T")
ObjectValue = Sequence[FlagValueType] | Mapping[str, FlagValueType]


class HubbubProvider(AbstractProvider):
    """An OpenFeature provider answering from a `FlagBook` (which someone else follows)."""

    def __init__(self, book: FlagBook) -> None:
        super().__init__()
        self._book = book

    def get_metadata(self) -> Metadata:
        return Metadata(name="hubbub")

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        """The flag for the context's tenant (`targeting_key`) and `subject` attribute."""
        context = evaluation_context or EvaluationContext()
        if not context.targeting_key:
            return _error(default_value, ErrorCode.TARGETING_KEY_MISSING, "name the tenant")
        subject = context.attributes.get("subject")
        if subject is not None and not isinstance(subject, str):
            return _error(default_value, ErrorCode.INVALID_CONTEXT, "subject must be a string")
        answer = self._book.evaluate(flag_key, context.targeting_key, subject)
        if answer is None:
            return FlagResolutionDetails(
                value=default_value, reason=Reason.DEFAULT, error_code=ErrorCode.FLAG_NOT_FOUND,
                error_message=f"no flag {flag_key!r} for tenant {context.targeting_key!r}",
            )  # fmt: skip
        value, reason = answer
        return FlagResolutionDetails(
            value=value, reason=Reason(reason), variant="on" if value else "off"
        )

    def resolve_string_details(
        self,
        flag_key: str,
        default_value: str,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[str]:
        return _not_boolean(default_value)

    def resolve_integer_details(
        self,
        flag_key: str,
        default_value: int,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[int]:
        return _not_boolean(default_value)

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        return _not_boolean(default_value)

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: ObjectValue,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[ObjectValue]:
        return _not_boolean(default_value)


def _not_boolean(default_value: T) -> FlagResolutionDetails[T]:
    return _error(default_value, ErrorCode.TYPE_MISMATCH, "Hubbub's flags are boolean")


def _error(default_value: T, code: ErrorCode, message: str) -> FlagResolutionDetails[T]:
    return FlagResolutionDetails(
        value=default_value, reason=Reason.ERROR, error_code=code, error_message=message
    )


def install(book: FlagBook, domain: str | None = None) -> None:
    """Make a `HubbubProvider` over `book` the OpenFeature provider (of `domain`, or the
    default one), ready on return: `set_provider` would initialise it on a thread of its
    own, and a flag asked for before that thread ran would answer the default with
    `PROVIDER_NOT_READY`."""
    if domain is None:
        api.set_provider_and_wait(HubbubProvider(book))
    else:
        api.set_provider_and_wait(HubbubProvider(book), domain)
