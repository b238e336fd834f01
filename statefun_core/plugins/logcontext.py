"""Log records that say which function wrote them: typename, id, caller and trace id.

The :class:`InvocationLogContext` plugin keeps the invocation that runs in a context variable;
:class:`InvocationLogFilter` (the standard library's ``logging``) and
:func:`add_invocation_context` (a structlog processor) copy it onto each record. The plugin
registers with ``STATEFUN_LOG_CONTEXT=1`` (or pass it to ``make_plugin_manager``); without it
the handler does nothing per invocation and the filter finds no invocation.

The trace id is that of the current OpenTelemetry span when OpenTelemetry is in use and a
span is current (statefun-opentelemetry makes the invocation's span current), else the one of
the request's ``traceparent`` header. Lines written outside an invocation (a failure, a
cancellation, a refusal) name theirs by the same rule (:func:`trace_id`), the batch span's
first.
"""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Mapping, MutableMapping, Optional, Union

from ..tracecontext import TRACEPARENT, is_traceparent
from .endpoints import header
from .events import InvocationEvent
from .markers import hookimpl

__all__ = [
    "LOG_CONTEXT_ENV",
    "Invocation",
    "InvocationLogContext",
    "InvocationLogFilter",
    "add_invocation_context",
    "current_invocation",
    "log_line",
    "one_line",
]

#: Set to 1 (or true, yes, on) to register :class:`InvocationLogContext` as ``log_context``.
LOG_CONTEXT_ENV = "STATEFUN_LOG_CONTEXT"

_TOKEN_KEY = "log_context.token"

# control characters (newlines, ANSI escapes) and the explicit bidi controls, which a terminal
# or log viewer that reorders text would apply to the rest of the line; and lone surrogates (a
# JSON value's "\ud800"), which no UTF-8 output can write
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def one_line(text: str) -> str:
    """``text`` with its control characters (newlines included), explicit bidi controls and
    lone surrogates escaped as in Python (``\\n``, ``\\x1b``, ``\\u202e``, ``\\ud800``): what a
    log line may hold of a value from a request, which must not start a line of its own."""
    return _UNPRINTABLE.sub(lambda match: match.group().encode("unicode_escape").decode(), text)


@dataclass(frozen=True)
class Invocation:
    """The invocation running in this context."""

    function: str
    """The function's typename (``example/greeter``)."""
    id: str
    caller: Optional[str]
    """``typename/id`` of the function that sent the message, or None (from an ingress)."""
    traceparent: Optional[str]
    """The request's ``traceparent`` header, when it had a well-formed one."""

    @property
    def trace_id(self) -> Optional[str]:
        """The current OpenTelemetry span's trace id, else the ``traceparent``'s (32 hex
        digits), else None."""
        return trace_id(self.traceparent)


def trace_id(traceparent: Optional[str], traceresponse: Optional[str] = None) -> Optional[str]:
    """The trace id (32 hex digits) a log line of a request names, by one rule wherever the
    line is written (the handler, ``statefun_core.http``, a server's access line): the
    batch span's, when a tracing plugin made one (named in the reply's ``traceresponse``);
    else the current OpenTelemetry span's (inside an invocation, its span: in the batch span's
    trace); else the request's ``traceparent``'s. None when none is known; a value not of a
    ``traceparent``'s form is not known."""
    if traceresponse is not None and is_traceparent(traceresponse):
        return traceresponse[3:35]
    otel = sys.modules.get("opentelemetry.trace")  # never imported here: used if in use
    if otel is not None:
        span_context = otel.get_current_span().get_span_context()
        if span_context.is_valid:
            return format(span_context.trace_id, "032x")
    if traceparent is None or not is_traceparent(traceparent):
        return None
    return traceparent[3:35]


def log_line(
    logger: logging.Logger,
    level: int,
    msg: str,
    *args: object,
    fields: Mapping[str, Optional[str]],
    exc_info: Union[bool, BaseException, None] = None,
) -> None:
    """``logger.log(level, msg, *args, exc_info=exc_info, extra=fields)``, written even when
    the application's record factory sets one of ``fields`` on every record itself (a common
    recipe sets ``trace_id``): ``logging`` refuses to overwrite it with ``KeyError``, which
    would lose the line and replace the error it reports. The factory's value stands."""
    try:
        logger.log(level, msg, *args, exc_info=exc_info, extra=fields, stacklevel=2)
        return
    except KeyError:
        pass
    # Out of the ``except``: there, ``exc_info=True`` would log logging's KeyError.
    factory = logging.getLogRecordFactory()
    taken = factory(logger.name, level, "", 0, "", (), None).__dict__
    extra = {name: value for name, value in fields.items() if name not in taken}
    logger.log(level, msg, *args, exc_info=exc_info, extra=extra, stacklevel=2)


current_invocation: ContextVar[Optional[Invocation]] = ContextVar(
    "statefun_invocation", default=None
)
"""The invocation running, while :class:`InvocationLogContext` is registered."""


class InvocationLogContext:
    """The plugin that sets :data:`current_invocation` while each invocation runs."""

    @hookimpl
    def statefun_invocation_started(self, invocation: InvocationEvent) -> None:
        batch = invocation.batch
        caller = invocation.caller
        traceparent = header(batch.headers, TRACEPARENT)
        traceparent = traceparent if isinstance(traceparent, str) else None
        invocation.scratch[_TOKEN_KEY] = current_invocation.set(
            Invocation(
                batch.function_type,
                batch.function_id,
                None if caller is None else f"{caller.typename}/{caller.id}",
                traceparent if traceparent is not None and is_traceparent(traceparent) else None,
            )
        )

    @hookimpl
    def statefun_invocation_finished(
        self, invocation: InvocationEvent, error: Optional[BaseException]
    ) -> None:
        token = invocation.scratch.pop(_TOKEN_KEY, None)
        if token is not None:
            current_invocation.reset(token)


class InvocationLogFilter(logging.Filter):
    """Adds ``statefun_function``, ``statefun_id``, ``statefun_caller`` and ``trace_id`` to
    every record (None outside an invocation, or when unknown), for a format such as
    ``"%(statefun_function)s/%(statefun_id)s trace=%(trace_id)s %(message)s"``. Lets every
    record through. Outside an invocation a record keeps the ones it was given: the line of
    a refused request (400, 404, 405, 413) carries that request's ``trace_id``, the line of
    a cancelled request its function, id and trace id. The function, id and caller have
    their control characters escaped (:func:`one_line`): an id such as ``"ann\\nERROR ..."``
    stays on its line."""

    def filter(self, record: logging.LogRecord) -> bool:
        invocation = current_invocation.get()
        if invocation is None:
            given = record.__dict__
            function, id_ = given.get("statefun_function"), given.get("statefun_id")
            caller, record.trace_id = None, given.get("trace_id")
        else:
            function, id_, caller = invocation.function, invocation.id, invocation.caller
            record.trace_id = invocation.trace_id
        # an id (and a caller's typename) is whatever the request says: formatted with %s, a
        # newline in it would start a forged line
        record.statefun_function = None if function is None else one_line(function)
        record.statefun_id = None if id_ is None else one_line(id_)
        record.statefun_caller = None if caller is None else one_line(caller)
        return True


def add_invocation_context(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: inside an invocation, adds ``statefun_function``,
    ``statefun_id``, ``statefun_caller`` and ``trace_id`` (the known ones) to the event."""
    invocation = current_invocation.get()
    if invocation is not None:
        event_dict["statefun_function"] = invocation.function
        event_dict["statefun_id"] = invocation.id
        if invocation.caller is not None:
            event_dict["statefun_caller"] = invocation.caller
        trace_id = invocation.trace_id
        if trace_id is not None:
            event_dict["trace_id"] = trace_id
    return event_dict
