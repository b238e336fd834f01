"""The plugins see a dead-lettered invocation: the hook, statefun-prometheus and OpenTelemetry."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from typing import Any, Optional

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client import CollectorRegistry
from statefun_opentelemetry import OpenTelemetryPlugin
from statefun_prometheus import PrometheusPlugin

from statefun_core import DeadLetterRecord, FinalFailure, RequestReplyHandler
from statefun_core.plugins import BatchEvent, InvocationEvent, hookimpl, make_plugin_manager
from statefun_core.testing import wire

from .functions import ASYNC, AWAITING, DEAD_LETTERS, FINAL, SYNC, make_functions

NEW = {"total": None, "log": None}


def run(handler: RequestReplyHandler, driver: str, body: bytes) -> bytes:
    if driver == "handle_sync":
        return handler.handle_sync(body)
    return asyncio.run(handler.handle_async(body))


def serve(*plugins: Any) -> RequestReplyHandler:
    manager = make_plugin_manager(load_entrypoints=False)
    for plugin in plugins:
        manager.register(plugin)
    return RequestReplyHandler(make_functions(), plugins=manager, dead_letters=DEAD_LETTERS)


class Events:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    @hookimpl
    def statefun_invocation_started(self, invocation: InvocationEvent) -> None:
        self.calls.append(("started", invocation.index))

    @hookimpl
    def statefun_invocation_dead_lettered(
        self, invocation: InvocationEvent, error: BaseException, record: DeadLetterRecord
    ) -> None:
        self.calls.append(("dead_lettered", invocation.index, error, record))

    @hookimpl
    def statefun_invocation_finished(
        self, invocation: InvocationEvent, error: Optional[BaseException]
    ) -> None:
        self.calls.append(("finished", invocation.index, error))

    @hookimpl
    def statefun_batch_finished(self, batch: BatchEvent) -> None:
        self.calls.append(("batch_finished", batch.outcome, batch.dead_letters))


@pytest.mark.parametrize("driver", ["handle_sync", "handle_async"])
@pytest.mark.parametrize("typename", [SYNC, ASYNC, AWAITING])
def test_hook_statefun_invocation_dead_lettered(driver: str, typename: str) -> None:
    events = Events()
    body = wire.to_function(typename, "a", [1, FINAL, 2], NEW, caller=("test/caller", "c"))
    reply = run(serve(events), driver, body)

    (dead_lettered,) = [call for call in events.calls if call[0] == "dead_lettered"]
    _, index, error, record = dead_lettered
    assert index == 1
    assert isinstance(error, FinalFailure)
    assert (record.function_type, record.function_id, record.caller_id) == (typename, "a", "c")
    assert [call[:2] for call in events.calls] == [
        ("started", 0),
        ("finished", 0),
        ("started", 1),
        ("dead_lettered", 1),
        ("finished", 1),
        ("started", 2),
        ("finished", 2),
        ("batch_finished", "ok"),
    ]
    assert events.calls[4][2] is error  # finished gets the same error
    assert events.calls[-1] == ("batch_finished", "ok", 1)
    (sent,) = [r for r in wire.egress(reply) if r.egress == DEAD_LETTERS.typename]
    assert DeadLetterRecord.from_json(sent.value) == record


class RaisesWhenDeadLettered:
    @hookimpl
    def statefun_invocation_dead_lettered(
        self, invocation: InvocationEvent, error: BaseException, record: DeadLetterRecord
    ) -> None:
        raise RuntimeError("a broken plugin")


@pytest.mark.parametrize("driver", ["handle_sync", "handle_async"])
def test_a_plugin_that_raises_when_an_invocation_is_dead_lettered_changes_nothing(
    driver: str,
) -> None:
    """As any observer hook: logged and ignored, the reply and the other plugins' events as
    without it."""
    body = wire.to_function(SYNC, "a", [1, FINAL, 2], NEW, caller=("test/caller", "c"))
    without, events = Events(), Events()
    expected = without_time(run(serve(without), driver, body))
    assert without_time(run(serve(RaisesWhenDeadLettered(), events), driver, body)) == expected
    assert [call[:2] for call in events.calls] == [call[:2] for call in without.calls]


def without_time(reply: bytes) -> Any:
    """The reply as a message, its dead-letter records without the time they were made."""
    result = wire.invocation_result(reply)
    records = [
        dataclasses.replace(DeadLetterRecord.from_json(record.value), time=None)
        for record in wire.egress(reply)
        if record.egress == DEAD_LETTERS.typename
    ]
    del result.outgoing_egresses[:]
    return result, records


@pytest.mark.parametrize("driver", ["handle_sync", "handle_async"])
def test_prometheus_counts_dead_letters(driver: str) -> None:
    registry = CollectorRegistry()
    handler = serve(PrometheusPlugin(registry))
    labels = {"function_type": SYNC}
    assert registry.get_sample_value("statefun_dead_letters_total", labels) is None
    run(handler, driver, wire.to_function(SYNC, "a", [1, FINAL, 2, FINAL], NEW))
    assert registry.get_sample_value("statefun_dead_letters_total", labels) == 2
    batches = {"function_type": SYNC, "outcome": "ok"}
    assert registry.get_sample_value("statefun_batches_total", batches) == 1


@pytest.fixture
def exporter() -> Iterator[tuple[InMemorySpanExporter, TracerProvider]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter, provider
    provider.shutdown()


@pytest.mark.parametrize("driver", ["handle_sync", "handle_async"])
@pytest.mark.parametrize("typename", [SYNC, AWAITING])
def test_the_dead_lettered_invocation_is_marked_on_its_span(
    exporter: tuple[InMemorySpanExporter, TracerProvider], driver: str, typename: str
) -> None:
    spans, provider = exporter
    handler = serve(OpenTelemetryPlugin(tracer_provider=provider))
    run(handler, driver, wire.to_function(typename, "a", [1, FINAL], NEW))
    finished = spans.get_finished_spans()
    invocations = sorted(
        (s for s in finished if "statefun.invocation.index" in (s.attributes or {})),
        key=lambda s: (s.attributes or {})["statefun.invocation.index"],
    )
    ok, dead = (dict(s.attributes or {}) for s in invocations)
    assert ok["statefun.outcome"] == "ok" and "statefun.dead_lettered" not in ok
    assert dead["statefun.outcome"] == "dead_lettered"
    assert dead["statefun.dead_lettered"] is True
    (event,) = [e for e in invocations[1].events if e.name == "statefun.dead_letter"]
    assert dict(event.attributes or {}) == {
        "exception.type": "statefun_core.errors.FinalFailure",
        "exception.message": f"{FINAL} can never succeed",
    }
    assert invocations[1].status.status_code == StatusCode.ERROR
    (batch,) = [s for s in finished if "statefun.invocation.index" not in (s.attributes or {})]
    assert (batch.attributes or {})["statefun.dead_letters"] == 1
    assert (batch.attributes or {})["statefun.outcome"] == "ok"
