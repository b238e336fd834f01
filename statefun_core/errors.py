"""The exceptions the SDK raises; each maps to one HTTP status (see :mod:`statefun_core.http`)."""

from __future__ import annotations

import contextlib
import difflib
from typing import Any, Iterable, Optional

from google.protobuf.message import DecodeError

__all__ = [
    "AsyncFunctionInSyncContextError",
    "FinalFailure",
    "FunctionFailedError",
    "FunctionNotFoundError",
    "IntegrationNotAvailableError",
    "LimitExceededError",
    "MalformedRequestError",
    "MethodNotAllowedError",
    "PluginError",
    "RequestTooLargeError",
    "StatefunError",
    "UnknownTypeError",
]


_LISTED = 20  # the bound typenames a FunctionNotFoundError names, at most
_NEAREST_LENGTH = 256  # the longest typename a FunctionNotFoundError finds a nearest for


class StatefunError(Exception):
    """Base class of every error the SDK raises on purpose.

    ``status`` is the HTTP status a server answers with when a request ends in this error.
    """

    status: int = 500
    #: The refused request's W3C ``traceparent``, when it had a well-formed one: set by
    #: :meth:`~statefun_core.RequestReplyHandler.reject`, so that the refusal's log line
    #: carries the request's trace id.
    traceparent: Optional[str] = None


class MalformedRequestError(StatefunError, ValueError, DecodeError):
    """The request body is not a ``ToFunction`` with an invocation batch (HTTP 400).

    A protobuf ``DecodeError`` too, as the official SDK raises for a body it cannot parse.
    """

    status = 400


class MethodNotAllowedError(StatefunError):
    """The request is not a POST (HTTP 405); answer with ``Allow: POST``."""

    status = 405

    def __init__(self, message: str = "", *, method: Optional[str] = None) -> None:
        super().__init__(message or f"{method or 'the method'} is not allowed")
        #: the request's method, when the server says it
        self.method = method


class FunctionNotFoundError(StatefunError, KeyError):
    """No function is bound to the request's target typename (HTTP 404).

    A ``KeyError``, as the official SDK's ``for_typename`` raises.
    """

    status = 404

    def __init__(self, typename: str, bound: Optional[Iterable[str]] = None) -> None:
        message = f"no function is bound to the typename {typename!r}"
        if bound is not None:  # the typenames that are: a typo in module.yaml, or in bind()
            names = sorted(bound)
            # difflib indexes each character of the typename: not for one of any length a
            # request can carry (a typename is a namespace and a name, not a document)
            short = len(typename) <= _NEAREST_LENGTH
            nearest = difflib.get_close_matches(typename, names, n=1) if short else []
            if nearest:
                message += f" (did you mean {nearest[0]!r}?)"
            listed = ", ".join(names[:_LISTED]) or "none"
            more = len(names) - _LISTED
            message += f"; bound here: {listed}" + (f" and {more} more" if more > 0 else "")
        super().__init__(message)
        self.typename = typename

    def __str__(self) -> str:
        return str(self.args[0])


class LimitExceededError(StatefunError, ValueError):
    """A request or a batch went past one of the handler's :class:`~statefun_core.Limits`.

    ``limit`` is the name of the field of ``Limits``; ``setting`` is what the message names as
    the limit to raise (by default ``Limits.<limit>``). On the request side the status is 413;
    raised while a function runs, it fails the batch (500).
    """

    status = 413

    def __init__(
        self, limit: str, value: int, maximum: int, what: str = "", *, setting: str = ""
    ) -> None:
        setting = setting or f"Limits.{limit}"
        super().__init__(f"{what or limit} is {value}, over the limit of {maximum} ({setting})")
        self.limit = limit
        self.value = value
        self.maximum = maximum
        self.setting = setting


class RequestTooLargeError(LimitExceededError):
    """The request body is over a size limit (HTTP 413).

    ``setting`` names the limit that refused it: the handler's ``Limits.request_bytes`` by
    default, or the web framework's own, which refuses a body before the handler sees it
    (``DATA_UPLOAD_MAX_MEMORY_SIZE``, ``client_max_size``, ...). ``size`` is None for a body
    sent without its length (chunked) and refused before its end; ``value`` is then the least
    it was, one byte over the limit.
    """

    args: tuple[Any, ...]

    def __init__(self, size: Optional[int], maximum: int, setting: str = "") -> None:
        value = maximum + 1 if size is None else size
        super().__init__("request_bytes", value, maximum, setting=setting)
        over = f"over the limit of {maximum} bytes ({self.setting})"
        if size is None:
            self.args = (f"the request body is {over}",)
        else:
            self.args = (f"the request body is {size} bytes, {over}",)


class FunctionFailedError(StatefunError):
    """A function raised while handling a batch; nothing of the batch is returned (HTTP 500).

    The function's own exception is chained as ``__cause__``. What is not an ``Exception`` (a
    cancelled task's ``CancelledError``, ``KeyboardInterrupt``) goes on up as it is, once the
    plugins have heard the batch fail.
    """

    status = 500

    def __init__(self, typename: str, id: str) -> None:
        super().__init__(f"function {typename!r} failed for id {id!r}")
        self.typename = typename
        self.id = id


class AsyncFunctionInSyncContextError(StatefunError, RuntimeError):
    """``handle_sync`` met an ``async`` function that awaits while an event loop runs in this
    thread (one whose code never awaits runs anyway: it needs no loop).

    Use ``await handler.handle_async(...)`` from async code instead.
    """


class UnknownTypeError(StatefunError, TypeError):
    """No StateFun ``Type`` is known for a Python class (no plugin claims it)."""


class PluginError(StatefunError):
    """A plugin failed to load or is misconfigured (raised at start-up, naming the plugin)."""


class IntegrationNotAvailableError(StatefunError, ImportError):
    """An integration was imported without its framework; the message says what to install."""


class FinalFailure(Exception):
    """Raise it to say that this message can never succeed (``raise FinalFailure(...) from
    error`` keeps the cause).

    With a dead-letter egress for the function (see :mod:`statefun_core.deadletters`), the
    invocation's effects are dropped and the message goes to that egress; without one it fails
    the batch like any other exception.
    """


_UNREADABLE = "_statefun_unreadable"


def mark_unreadable(error: BaseException) -> None:
    """Mark ``error`` as raised while reading a state or an argument with its type."""
    # an exception class with __slots__ cannot be marked: it stays an ordinary failure
    with contextlib.suppress(AttributeError):
        setattr(error, _UNREADABLE, True)


def is_unreadable(error: BaseException) -> bool:
    """Whether ``error`` was raised reading a state or an argument (``final_unreadable``)."""
    return getattr(error, _UNREADABLE, False) is True


def error_text(error: BaseException) -> str:
    """``str(error)``, or, for an exception whose ``__str__`` raises, words that say so (as
    the traceback module's): a function's exception is described in a log line and a dead
    letter, which must not fail for it."""
    try:
        return str(error)
    except Exception:
        return f"<{type(error).__name__} object: str() failed>"
