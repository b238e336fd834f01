"""``OpenTelemetryPlugin``: one INTERNAL span per batch, a child span per invocation.

Both are named by the function's typename. The batch span's parent is the current span when
there is one (an HTTP server instrumentation already made it), else the W3C ``traceparent`` of
the request headers. The invocation span is the current span while the function runs, so spans
the function starts are its children.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from opentelemetry import context, propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter, TextMapPropagator
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from statefun_core.deadletters import DeadLetterRecord
from statefun_core.plugins import BatchEvent, InvocationEvent, hookimpl

__all__ = ["SCRATCH_KEY", "OpenTelemetryPlugin"]

#: The key of this plugin's span in ``BatchEvent.scratch`` and ``InvocationEvent.scratch``.
SCRATCH_KEY = "opentelemetry"
_TOKEN_KEY = "opentelemetry.token"
_DEAD_LETTERED_KEY = "opentelemetry.dead_lettered"


class _HeaderGetter(Getter[Mapping[str, str]]):
    """Reads headers whatever their case: frameworks hand over dicts as well as
    case-insensitive multidicts."""

    def get(self, carrier: Mapping[str, str], key: str) -> Optional[list[str]]:
        value = carrier.get(key)
        if value is None:
            key = key.lower()
            value = next((v for k, v in carrier.items() if k.lower() == key), None)
        return None if value is None else [value]

    def keys(self, carrier: Mapping[str, str]) -> list[str]:
        return list(carrier)


_GETTER = _HeaderGetter()


class OpenTelemetryPlugin:
    """Traces batches and invocations.

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

    def _parent(self, headers: Mapping[str, str]) -> Optional[Context]:
        if trace.get_current_span().get_span_context().is_valid:
            return None  # the current context
        propagator = self._propagator or propagate.get_global_textmap()
        return propagator.extract(headers, getter=_GETTER)

    @hookimpl
    def statefun_batch_started(self, batch: BatchEvent) -> None:
        batch.scratch[SCRATCH_KEY] = self._tracer.start_span(
            batch.function_type,
            context=self._parent(batch.headers),
            kind=SpanKind.INTERNAL,
            attributes={
                "statefun.function.type": batch.function_type,
                "statefun.function.id": batch.function_id,
                "statefun.batch.size": batch.batch_size,
            },
        )

    @hookimpl
    def statefun_invocation_started(self, invocation: InvocationEvent) -> None:
        batch = invocation.batch
        parent: Optional[Span] = batch.scratch.get(SCRATCH_KEY)
        attributes: dict[str, Any] = {
            "statefun.function.type": batch.function_type,
            "statefun.function.id": batch.function_id,
            "statefun.invocation.index": invocation.index,
            "statefun.argument.type": invocation.argument_typename,
        }
        if invocation.caller is not None:
            attributes["statefun.caller.type"] = invocation.caller.typename
            attributes["statefun.caller.id"] = invocation.caller.id
        span = self._tracer.start_span(
            batch.function_type,
            context=trace.set_span_in_context(parent) if parent is not None else None,
            kind=SpanKind.INTERNAL,
            attributes=attributes,
        )
        invocation.scratch[SCRATCH_KEY] = span
        invocation.scratch[_TOKEN_KEY] = context.attach(trace.set_span_in_context(span))

    @hookimpl
    def statefun_invocation_dead_lettered(
        self, invocation: InvocationEvent, error: BaseException, record: DeadLetterRecord
    ) -> None:
        span: Optional[Span] = invocation.scratch.get(SCRATCH_KEY)
        if span is not None:
            invocation.scratch[_DEAD_LETTERED_KEY] = True
            span.set_attribute("statefun.dead_lettered", True)
            span.add_event(
                "statefun.dead_letter",
                {"exception.type": record.error_class, "exception.message": record.error_message},
            )

    @hookimpl
    def statefun_invocation_finished(
        self, invocation: InvocationEvent, error: Optional[BaseException]
    ) -> None:
        span: Optional[Span] = invocation.scratch.pop(SCRATCH_KEY, None)
        token = invocation.scratch.pop(_TOKEN_KEY, None)
        if token is not None:
            context.detach(token)
        if span is not None:
            if invocation.scratch.pop(_DEAD_LETTERED_KEY, False):
                outcome = "dead_lettered"
            else:
                outcome = "ok" if error is None else "error"
            _end(span, outcome, error)

    @hookimpl
    def statefun_batch_finished(self, batch: BatchEvent) -> None:
        span: Optional[Span] = batch.scratch.pop(SCRATCH_KEY, None)
        if span is None:
            return
        span.set_attributes(
            {
                "statefun.state.read_bytes": batch.state_bytes_read,
                "statefun.state.written_bytes": batch.state_bytes_written,
                "statefun.outgoing.messages": batch.messages,
                "statefun.outgoing.delayed": batch.delayed_messages,
                "statefun.outgoing.egress": batch.egress_records,
            }
        )
        if batch.dead_letters:
            span.set_attribute("statefun.dead_letters", batch.dead_letters)
        if batch.missing_states:
            span.set_attribute("statefun.state.missing", list(batch.missing_states))
        _end(span, batch.outcome or "ok", None)

    @hookimpl
    def statefun_batch_failed(self, batch: BatchEvent, error: BaseException) -> None:
        span: Optional[Span] = batch.scratch.pop(SCRATCH_KEY, None)
        if span is not None:
            _end(span, "error", error)


def _end(span: Span, outcome: str, error: Optional[BaseException]) -> None:
    span.set_attribute("statefun.outcome", outcome)
    if error is not None:
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
    span.end()
