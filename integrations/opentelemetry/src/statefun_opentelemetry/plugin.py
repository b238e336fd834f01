"""``OpenTelemetryPlugin``: a span per batch, a child span per invocation, a span per rejected
request, named and attributed by OpenTelemetry's semantic conventions (FaaS, messaging, HTTP,
``error.type``); ``statefun.*`` attributes only for what no convention covers.

The batch span is named as the messaging conventions name a process span, ``process
{typename}``. It is the HTTP request's SERVER span (with ``http.request.method`` and
``http.response.status_code``) when the handler was given the request's headers and no span is
current, else a CONSUMER span: processing pushed messages, under the SERVER span an HTTP server
instrumentation made, or with no HTTP request at all. Its parent is the current span, else the
trace context the propagator reads from the headers (W3C ``traceparent``, ``tracestate`` and
``baggage`` by default). The invocation span, named by the function's typename as the FaaS
conventions name an invocation, is current while the function runs, with the baggage of the
request, and links to its message's origin (``statefun-origins``, see
:mod:`statefun_core.tracecontext`). The batch span is reported back to the runtime in the
reply's ``traceresponse`` header.
"""

from __future__ import annotations

import contextlib
from contextvars import Token
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from opentelemetry import context, propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter, TextMapPropagator
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from statefun_core.deadletters import DeadLetterRecord
from statefun_core.errors import FunctionNotFoundError
from statefun_core.http import status_for
from statefun_core.plugins import (
    BatchEvent,
    InvocationCancelled,
    InvocationEvent,
    InvocationRetried,
    header,
    hookimpl,
)
from statefun_core.tracecontext import ORIGINS, TRACERESPONSE, decode_origins

__all__ = ["SCRATCH_KEY", "OpenTelemetryPlugin"]

#: The key of the batch's span in ``BatchEvent.scratch``, and of the invocation's in
#: ``InvocationEvent.scratch``. With two instances of the plugin: the span of the one called
#: first (pluggy calls the last registered first), which the reply's ``traceresponse`` names.
SCRATCH_KEY = "opentelemetry"
#: The tokens of the contexts the instances attached for an invocation: pluggy calls them in the
#: same order to start and to finish, so the first to finish detaches them all, last first.
_TOKENS_KEY = "opentelemetry.tokens"


@dataclass
class _BatchTrace:
    span: Span
    context: Context  # the batch span's: the invocations' parent
    origins: Optional[list[Optional[str]]]  # each message's origin (statefun-origins)
    is_request: bool  # the span is the HTTP request's (SERVER): it gets the reply's status


@dataclass
class _InvocationTrace:
    span: Span
    dead_lettered: bool = False


class _HeaderGetter(Getter[Mapping[str, str]]):
    """Reads headers whatever their case: frameworks hand over dicts as well as
    case-insensitive multidicts."""

    def get(self, carrier: Mapping[str, str], key: str) -> Optional[list[str]]:
        value = header(carrier, key)
        return None if value is None else [value]

    def keys(self, carrier: Mapping[str, str]) -> list[str]:
        return list(carrier)


_GETTER = _HeaderGetter()


class OpenTelemetryPlugin:
    """Traces batches, invocations and rejected requests.

    ``tracer_provider`` and ``propagator`` default to the global ones (looked up per span).
    """

    def __init__(
        self,
        tracer_provider: Optional[trace.TracerProvider] = None,
        propagator: Optional[TextMapPropagator] = None,
    ) -> None:
        from . import __version__

        self._tracer = trace.get_tracer(__name__, __version__, tracer_provider)
        self._propagator = propagator
        # per instance: two instances (each with its own provider) trace independently
        self._key = f"{SCRATCH_KEY}.{id(self)}"

    def _parent(self, headers: Mapping[str, str]) -> tuple[Context, SpanKind]:
        """The parent context of a request's span, and the kind of that span."""
        current = context.get_current()
        if trace.get_current_span(current).get_span_context().is_valid:
            return current, SpanKind.INTERNAL  # the request's own span is current
        propagator = self._propagator or propagate.get_global_textmap()
        parent = propagator.extract(headers, getter=_GETTER)
        return parent, SpanKind.SERVER if headers else SpanKind.CONSUMER

    @hookimpl
    def statefun_batch_started(self, batch: BatchEvent) -> None:
        parent, kind = self._parent(batch.headers)
        is_request = kind is SpanKind.SERVER  # the span is the HTTP request's own
        attributes: dict[str, Any] = {
            "faas.trigger": "pubsub",
            "messaging.system": "statefun",
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": batch.function_type,
            "statefun.function.id": batch.function_id,
        }
        if batch.batch_size > 1:  # the conventions leave it off an operation on one message
            attributes["messaging.batch.message_count"] = batch.batch_size
        if is_request:
            attributes["http.request.method"] = "POST"
        # named as the messaging conventions name an operation: "{operation} {destination}"
        span = self._tracer.start_span(
            f"process {batch.function_type}",
            context=parent,
            # processing pushed messages is CONSUMER by the messaging conventions
            kind=kind if is_request else SpanKind.CONSUMER,
            attributes=attributes,
        )
        batch.scratch.setdefault(SCRATCH_KEY, span)
        origins = _GETTER.get(batch.headers, ORIGINS) if batch.headers else None
        batch.scratch[self._key] = _BatchTrace(
            span,
            trace.set_span_in_context(span, parent),
            decode_origins(origins[0], batch.batch_size) if origins else None,
            is_request,
        )
        span_context = span.get_span_context()
        if span_context.is_valid:
            batch.reply_headers.setdefault(TRACERESPONSE, _traceparent(span_context))

    @hookimpl
    def statefun_invocation_started(self, invocation: InvocationEvent) -> None:
        batch = invocation.batch
        batch_trace: Optional[_BatchTrace] = batch.scratch.get(self._key)
        parent = None if batch_trace is None else batch_trace.context
        attributes: dict[str, Any] = {
            "messaging.destination.name": batch.function_type,
            "statefun.function.id": batch.function_id,
            "statefun.invocation.index": invocation.index,
            "statefun.argument.type": invocation.argument_typename,
        }
        if invocation.caller is not None:
            attributes["statefun.caller.type"] = invocation.caller.typename
            attributes["statefun.caller.id"] = invocation.caller.id
        links = None
        origins = None if batch_trace is None else batch_trace.origins
        if origins is not None and invocation.index < len(origins):
            origin = origins[invocation.index]
            if origin is not None:
                links = [Link(_span_context(origin))]
        span = self._tracer.start_span(
            batch.function_type,
            context=parent,
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            links=links,
        )
        invocation.scratch.setdefault(SCRATCH_KEY, span)
        invocation.scratch[self._key] = _InvocationTrace(span)
        tokens: list[Token[Context]] = invocation.scratch.setdefault(_TOKENS_KEY, [])
        tokens.append(context.attach(trace.set_span_in_context(span, parent)))

    @hookimpl
    def statefun_invocation_dead_lettered(
        self, invocation: InvocationEvent, error: BaseException, record: DeadLetterRecord
    ) -> None:
        traced: Optional[_InvocationTrace] = invocation.scratch.get(self._key)
        if traced is not None:
            traced.dead_lettered = True
            span = traced.span
            span.set_attribute("statefun.dead_lettered", True)
            span.add_event(
                "statefun.dead_letter",
                {"exception.type": record.error_class, "exception.message": record.error_message},
            )

    @hookimpl
    def statefun_invocation_finished(
        self, invocation: InvocationEvent, error: Optional[BaseException]
    ) -> None:
        for token in reversed(invocation.scratch.pop(_TOKENS_KEY, ())):
            context.detach(token)
        traced: Optional[_InvocationTrace] = invocation.scratch.pop(self._key, None)
        if traced is None:
            return
        if isinstance(error, InvocationRetried):
            # a try run again is not the function's failure: ended (every started span is,
            # and the spans the function started in it keep their parent) with no error
            _end(traced.span, "retried", None)
            return
        if isinstance(error, InvocationCancelled):  # stopped: its client went (see below)
            _end(traced.span, "cancelled", None)
            return
        outcome = "dead_lettered" if traced.dead_lettered else "ok" if error is None else "error"
        _end(traced.span, outcome, error)

    @hookimpl
    def statefun_batch_finished(self, batch: BatchEvent) -> None:
        traced: Optional[_BatchTrace] = batch.scratch.pop(self._key, None)
        if traced is None:
            return
        attributes: dict[str, Any] = {
            "statefun.state.read_bytes": batch.state_bytes_read,
            "statefun.state.written_bytes": batch.state_bytes_written,
            "statefun.outgoing.messages": batch.messages,
            "statefun.outgoing.delayed": batch.delayed_messages,
            "statefun.outgoing.egress": batch.egress_records,
            "statefun.outcome": batch.outcome or "ok",
        }
        if batch.dead_letters:
            attributes["statefun.dead_letters"] = batch.dead_letters
        if batch.missing_states:
            attributes["statefun.state.missing"] = list(batch.missing_states)
        if traced.is_request:
            attributes["http.response.status_code"] = 200
        span = traced.span
        span.set_attributes(attributes)  # one call: each takes the span's lock
        span.end()

    @hookimpl
    def statefun_batch_failed(self, batch: BatchEvent, error: BaseException) -> None:
        traced: Optional[_BatchTrace] = batch.scratch.get(self._key)
        if traced is None:
            return
        # ended by statefun_request_failed, which follows
        if batch.outcome == "cancelled":
            # The client hung up (a runtime whose call timed out, a server stopping): not the
            # function's failure. As the conventions treat a cancellation by the caller (gRPC's
            # CANCELLED on a server span, an HTTP request aborted by its caller), the status
            # stays unset and no error.type is set; statefun.outcome tells it.
            _record(traced.span, "cancelled", None)
        else:
            _record(traced.span, "error", error)

    @hookimpl
    def statefun_request_failed(
        self, error: BaseException, batch: Optional[BatchEvent], headers: Mapping[str, str]
    ) -> None:
        if batch is not None:
            traced: Optional[_BatchTrace] = batch.scratch.pop(self._key, None)
            if traced is not None:
                # What the server answers: a FunctionFailedError is a 500, whatever the
                # function raised (a limit, a CancelledError of its own); a request cancelled
                # or interrupted (not an Exception: the handler's own decision) gets no reply.
                if traced.is_request and isinstance(error, Exception):
                    traced.span.set_attribute("http.response.status_code", status_for(error))
                traced.span.end()
            return
        parent, kind = self._parent(headers)
        status: int = getattr(error, "status", 500)
        attributes: dict[str, Any] = {
            "error.type": _error_type(error),
            "http.response.status_code": status,
            "statefun.outcome": "rejected",
        }
        # the endpoint answers POST only: another method is the 405's, when the server says it
        method = getattr(error, "method", None) if status == 405 else "POST"
        # named as the HTTP conventions name a server span without a route: by its method,
        # "HTTP" for one they do not name (the typename of a 404 is the caller's: unbounded)
        name = "HTTP"
        if method in _METHODS:
            attributes["http.request.method"] = name = method
        elif method is not None:
            attributes["http.request.method"] = "_OTHER"
            attributes["http.request.method_original"] = method
        if isinstance(error, FunctionNotFoundError):
            attributes["messaging.destination.name"] = error.typename
        span = self._tracer.start_span(name, context=parent, kind=kind, attributes=attributes)
        # a 4xx answer is the client's error: by the HTTP conventions a SERVER span's status
        # stays unset, error.type tells what was wrong
        if status >= 500 or kind is not SpanKind.SERVER:
            span.set_status(Status(StatusCode.ERROR, _description(error)))
        span.end()


#: the methods the HTTP conventions name; any other is "_OTHER"
_METHODS = frozenset(
    ("CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE")
)


def _end(span: Span, outcome: str, error: Optional[BaseException]) -> None:
    _record(span, outcome, error)
    span.end()


def _record(span: Span, outcome: str, error: Optional[BaseException]) -> None:
    span.set_attribute("statefun.outcome", outcome)
    if error is not None:
        span.set_attribute("error.type", _error_type(error))
        span.set_status(Status(StatusCode.ERROR, _description(error)))
        with contextlib.suppress(Exception):  # it calls str(error), which the error may fail
            span.record_exception(error)


def _description(error: BaseException) -> str:
    """``Type: message``, for an exception whose ``__str__`` raises too."""
    try:
        return f"{type(error).__name__}: {error}"
    except Exception:
        return f"{type(error).__name__} (str() failed)"


def _error_type(error: BaseException) -> str:
    """The exception's fully qualified class name (builtins by their bare name)."""
    cls = type(error)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def _traceparent(span_context: SpanContext) -> str:
    return (
        f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-"
        f"{int(span_context.trace_flags):02x}"
    )


def _span_context(traceparent: str) -> SpanContext:
    """The remote span a well-formed ``traceparent`` names (see ``decode_origins``)."""
    return SpanContext(
        trace_id=int(traceparent[3:35], 16),
        span_id=int(traceparent[36:52], 16),
        is_remote=True,
        trace_flags=TraceFlags(int(traceparent[53:55], 16)),
    )
