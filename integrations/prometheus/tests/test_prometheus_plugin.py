from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Optional

import pytest
import statefun_prometheus
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from statefun_prometheus import PrometheusPlugin, metrics_endpoint, metrics_response
from statefun_prometheus.plugin import DURATION_BUCKETS

from statefun_core import (
    Context,
    DeadLetterEgress,
    IntType,
    Message,
    RequestReplyHandler,
    StatefulFunctions,
    ValueSpec,
    kafka_egress_message,
    message_builder,
)
from statefun_core.aws_lambda import LambdaHandler
from statefun_core.errors import FunctionFailedError, FunctionNotFoundError, MalformedRequestError
from statefun_core.plugins import BatchEvent, hookimpl, make_plugin_manager
from statefun_core.testing import wire
from statefun_core.testing.aws_lambda import gateway_event, invoke

GREETER = "example/greeter"
BROKEN = "example/broken"


def make_functions() -> StatefulFunctions:
    functions = StatefulFunctions()

    @functions.bind(GREETER, specs=[ValueSpec("seen", IntType)])
    def greeter(context: Context, message: Message) -> None:
        seen = (context.storage.seen or 0) + 1
        context.storage.seen = seen
        name = message.as_string()
        context.send(message_builder("example/inbox", name, int_value=seen))
        context.send_after(timedelta(seconds=1), message_builder(GREETER, name, str_value="x"))
        context.send_egress(kafka_egress_message("example/out", "greetings", f"hi {name}"))

    @functions.bind(BROKEN)
    def broken(context: Context, message: Message) -> None:
        raise RuntimeError("boom")

    return functions


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def handler(registry: CollectorRegistry) -> RequestReplyHandler:
    plugins = make_plugin_manager([PrometheusPlugin(registry)], load_entrypoints=False)
    return RequestReplyHandler(make_functions(), plugins=plugins)


SEEN_2 = {"seen": 2}


def test_the_entry_point_registers_the_default_plugin_on_the_default_registry() -> None:
    manager = make_plugin_manager()
    from statefun_prometheus.default import plugin

    assert manager.get_plugin("prometheus") is plugin
    handler = RequestReplyHandler(make_functions(), plugins=manager)
    labels = {"function_type": GREETER, "outcome": "ok"}
    before = REGISTRY.get_sample_value("statefun_invocations_total", labels) or 0.0
    handler.handle_sync(wire.to_function(GREETER, "ann", ["ann"], SEEN_2))
    assert REGISTRY.get_sample_value("statefun_invocations_total", labels) == before + 1


def test_the_entry_point_can_be_blocked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATEFUN_DISABLED_PLUGINS", "prometheus")
    assert make_plugin_manager().get_plugin("prometheus") is None


def test_a_batch_is_counted_with_its_size_state_and_outgoing_messages(
    handler: RequestReplyHandler, registry: CollectorRegistry
) -> None:
    handler.handle_sync(wire.to_function(GREETER, "ann", ["ann", "bob", "cid"], SEEN_2))

    assert value(registry, "statefun_invocations_total", function_type=GREETER, outcome="ok") == 3
    assert value(registry, "statefun_batches_total", function_type=GREETER, outcome="ok") == 1
    assert value(registry, "statefun_batch_size_count", function_type=GREETER) == 1
    assert value(registry, "statefun_batch_size_sum", function_type=GREETER) == 3
    assert value(registry, "statefun_batch_size_bucket", function_type=GREETER, le="2.0") == 0
    assert value(registry, "statefun_batch_size_bucket", function_type=GREETER, le="5.0") == 1
    duration_count = "statefun_batch_duration_seconds_count"
    assert value(registry, duration_count, function_type=GREETER, outcome="ok") == 1
    assert value(registry, "statefun_state_read_bytes_total", function_type=GREETER) == 5
    assert value(registry, "statefun_state_written_bytes_total", function_type=GREETER) == 5
    for kind in ("message", "delayed", "egress"):
        outgoing = value(
            registry, "statefun_outgoing_messages_total", function_type=GREETER, kind=kind
        )
        assert outgoing == 3, kind


def test_every_series_of_a_function_type_reads_0_before_it_counts(
    handler: RequestReplyHandler, registry: CollectorRegistry
) -> None:
    handler.handle_sync(wire.to_function(GREETER, "ann", ["ann"]))  # missing state: nothing else
    labels = {"function_type": GREETER}
    assert (
        registry.get_sample_value("statefun_invocations_total", {**labels, "outcome": "error"}) == 0
    )
    assert registry.get_sample_value("statefun_batches_total", {**labels, "outcome": "ok"}) == 0
    assert registry.get_sample_value("statefun_state_written_bytes_total", labels) == 0
    kind = {**labels, "kind": "egress"}
    assert registry.get_sample_value("statefun_outgoing_messages_total", kind) == 0
    assert registry.get_sample_value("statefun_batches_total", {**labels, "outcome": "ok"}) == 0
    cancelled = {**labels, "outcome": "cancelled"}
    assert registry.get_sample_value("statefun_batches_total", cancelled) == 0
    assert registry.get_sample_value("statefun_invocations_total", cancelled) == 0
    assert registry.get_sample_value("statefun_batch_duration_seconds_count", cancelled) == 0


def test_handle_async_is_counted_alike(
    handler: RequestReplyHandler, registry: CollectorRegistry
) -> None:
    asyncio.run(handler.handle_async(wire.to_function(GREETER, "ann", ["ann"], SEEN_2)))
    assert value(registry, "statefun_invocations_total", function_type=GREETER, outcome="ok") == 1
    assert value(registry, "statefun_batches_total", function_type=GREETER, outcome="ok") == 1


def test_missing_state_is_a_batch_outcome(
    handler: RequestReplyHandler, registry: CollectorRegistry
) -> None:
    handler.handle_sync(wire.to_function(GREETER, "ann", ["ann"]))
    labels = {"function_type": GREETER}
    assert value(registry, "statefun_batches_total", outcome="missing_state", **labels) == 1
    assert value(registry, "statefun_invocations_total", outcome="ok", **labels) == 0


def test_a_failing_function_counts_an_error(
    handler: RequestReplyHandler, registry: CollectorRegistry
) -> None:
    with pytest.raises(FunctionFailedError):
        handler.handle_sync(wire.to_function(BROKEN, "ann", ["x", "y"]))
    assert value(registry, "statefun_invocations_total", function_type=BROKEN, outcome="error") == 1
    assert value(registry, "statefun_batches_total", function_type=BROKEN, outcome="error") == 1
    assert value(registry, "statefun_batch_size_sum", function_type=BROKEN) == 2
    assert value(registry, "statefun_requests_rejected_total", status="500") == 0


def test_a_request_whose_client_went_counts_as_cancelled_not_as_an_error(
    registry: CollectorRegistry,
) -> None:
    """Behind a real aiohttp server that cancels the handler of a request whose client went
    (``handler_cancellation=True``), a client that closes its connection mid-batch, as a
    runtime whose call timed out does: the batch, its duration and the invocation the
    cancellation stopped are counted ``cancelled``; nothing is counted ``error``, which
    alerts on the functions' failures."""
    web = pytest.importorskip("aiohttp.web")
    statefun_aiohttp = pytest.importorskip("statefun_aiohttp")
    slow = "example/slow"
    functions = StatefulFunctions()
    second: list[asyncio.Event] = []  # made in the loop (Python 3.9 binds one to a loop)

    @functions.bind(slow)
    async def waits_on_its_second(context: Context, message: Message) -> None:
        if message.as_string() == "second":
            second[0].set()
            await asyncio.Event().wait()  # until cancelled

    plugins = make_plugin_manager([PrometheusPlugin(registry)], load_entrypoints=False)
    app = statefun_aiohttp.create_app(RequestReplyHandler(functions, plugins=plugins))

    async def client_goes() -> None:
        second.append(asyncio.Event())
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        try:
            body = wire.to_function(slow, "ann", ["first", "second", "third"])
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            head = f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n\r\n"
            writer.write(head.encode() + body)
            await writer.drain()
            await second[0].wait()
            writer.close()  # the runtime gives up
            await writer.wait_closed()
            for _ in range(10_000):  # until the batch was counted (no time is asserted)
                if value(registry, "statefun_batch_size_count", function_type=slow):
                    break
                await asyncio.sleep(0.001)
        finally:
            await runner.cleanup()

    asyncio.run(client_goes())
    labels = {"function_type": slow}
    assert value(registry, "statefun_batches_total", outcome="cancelled", **labels) == 1
    assert value(registry, "statefun_batches_total", outcome="error", **labels) == 0
    count = "statefun_batch_duration_seconds_count"
    assert value(registry, count, outcome="cancelled", **labels) == 1
    assert value(registry, count, outcome="error", **labels) == 0
    invocations = "statefun_invocations_total"
    assert value(registry, invocations, outcome="ok", **labels) == 1  # the first
    assert value(registry, invocations, outcome="cancelled", **labels) == 1  # the second
    assert value(registry, invocations, outcome="error", **labels) == 0  # the third never ran
    assert value(registry, "statefun_batch_size_sum", **labels) == 3


def test_the_duration_of_failed_batches_is_apart_from_that_of_replies(
    handler: RequestReplyHandler, registry: CollectorRegistry
) -> None:
    handler.handle_sync(wire.to_function(GREETER, "ann", ["ann"], SEEN_2))
    with pytest.raises(FunctionFailedError):
        handler.handle_sync(wire.to_function(GREETER, "ann", ["ann", 7], SEEN_2))  # not a str
    handler.handle_sync(wire.to_function(GREETER, "bob", ["bob"]))  # missing state

    count = "statefun_batch_duration_seconds_count"
    for outcome in ("ok", "error", "missing_state"):
        assert value(registry, count, function_type=GREETER, outcome=outcome) == 1, outcome


def test_a_dead_lettered_invocation_is_counted_as_a_dead_letter_and_an_error(
    registry: CollectorRegistry,
) -> None:
    functions = StatefulFunctions()
    poison = "example/poison"

    @functions.bind(
        poison, final_errors=(KeyError,), dead_letters=DeadLetterEgress("example/dead", "dead")
    )
    def fragile(context: Context, message: Message) -> None:
        if message.as_string() == "bad":
            raise KeyError("bad")

    plugins = make_plugin_manager([PrometheusPlugin(registry)], load_entrypoints=False)
    handler = RequestReplyHandler(functions, plugins=plugins)
    handler.handle_sync(wire.to_function(poison, "ann", ["ok", "bad", "ok"]))
    assert value(registry, "statefun_dead_letters_total", function_type=poison) == 1
    assert value(registry, "statefun_invocations_total", function_type=poison, outcome="error") == 1
    assert value(registry, "statefun_invocations_total", function_type=poison, outcome="ok") == 2
    assert value(registry, "statefun_batches_total", function_type=poison, outcome="ok") == 1


def loop_asking_handler(registry: CollectorRegistry) -> RequestReplyHandler:
    """``ASKS``: an async function that never awaits but asks for the running loop; "bad" is
    its final failure."""
    functions = StatefulFunctions()

    @functions.bind(ASKS, final_errors=(KeyError,), dead_letters=DeadLetterEgress("example/dl"))
    async def asking(context: Context, message: Message) -> None:
        if message.as_string() == "bad":
            raise KeyError("bad")
        asyncio.get_running_loop()

    plugins = make_plugin_manager([PrometheusPlugin(registry)], load_entrypoints=False)
    return RequestReplyHandler(functions, plugins=plugins)


ASKS = "example/asks"


def test_an_async_function_run_again_as_a_task_counts_no_error(
    registry: CollectorRegistry,
) -> None:
    """Under handle_sync (WSGI, Lambda) an async function that never awaits runs with no
    loop; one that asks for the loop all the same fails that try, and its batch runs again
    as a task: that try is not its failure, and no SRE should see an error for it."""
    handler = loop_asking_handler(registry)
    for _ in range(2):  # the first batch tried with no loop, the second a task from its start
        handler.handle_sync(wire.to_function(ASKS, "ann", ["ok"]))  # no loop in this thread
    assert value(registry, "statefun_invocations_total", function_type=ASKS, outcome="error") == 0
    assert value(registry, "statefun_invocations_total", function_type=ASKS, outcome="ok") == 2
    assert value(registry, "statefun_batches_total", function_type=ASKS, outcome="ok") == 2


def test_a_record_dead_lettered_before_the_ask_for_the_loop_is_counted_once(
    registry: CollectorRegistry,
) -> None:
    """The first try dead-letters "bad", then "ok" asks for the loop: the batch runs again and
    its reply holds one record, which is counted once."""
    handler = loop_asking_handler(registry)
    reply = handler.handle_sync(wire.to_function(ASKS, "ann", ["bad", "ok"]))
    assert len(wire.invocation_result(reply).outgoing_egresses) == 1
    assert value(registry, "statefun_dead_letters_total", function_type=ASKS) == 1


def test_the_dead_letters_of_a_failed_batch_are_not_counted(registry: CollectorRegistry) -> None:
    """Its reply, and the records in it, are never sent: the runtime sends the batch again."""
    functions = StatefulFunctions()
    poison = "example/poison"

    @functions.bind(poison, final_errors=(KeyError,), dead_letters=DeadLetterEgress("example/dl"))
    def fragile(context: Context, message: Message) -> None:
        raise (KeyError if message.as_string() == "bad" else RuntimeError)("boom")

    plugins = make_plugin_manager([PrometheusPlugin(registry)], load_entrypoints=False)
    handler = RequestReplyHandler(functions, plugins=plugins)
    with pytest.raises(FunctionFailedError):
        handler.handle_sync(wire.to_function(poison, "ann", ["bad", "worse"]))
    assert value(registry, "statefun_dead_letters_total", function_type=poison) == 0
    assert value(registry, "statefun_batches_total", function_type=poison, outcome="error") == 1


def test_a_lambda_reply_over_what_the_gateway_takes_back_is_one_failed_batch(
    registry: CollectorRegistry,
) -> None:
    """Not an ok batch and a rejected request besides: one request, one batch, failed."""
    functions = StatefulFunctions()

    @functions.bind(GREETER)
    def large(context: Context, message: Message) -> None:
        context.send(message_builder("example/inbox", "x", str_value="x" * 800_000))

    plugins = make_plugin_manager([PrometheusPlugin(registry)], load_entrypoints=False)
    statefun = LambdaHandler(RequestReplyHandler(functions, plugins=plugins))
    event = gateway_event(wire.to_function(GREETER, "ann", ["x"]), gateway="alb")  # 1 MB
    assert invoke(statefun, event).status == 500
    assert value(registry, "statefun_batches_total", function_type=GREETER, outcome="error") == 1
    assert value(registry, "statefun_batches_total", function_type=GREETER, outcome="ok") == 0
    assert value(registry, "statefun_requests_rejected_total", status="500") == 0


def test_rejected_requests_are_counted_by_status_only(
    handler: RequestReplyHandler, registry: CollectorRegistry
) -> None:
    with pytest.raises(MalformedRequestError):
        handler.handle_sync(b"\xff not protobuf")
    with pytest.raises(FunctionNotFoundError):
        handler.handle_sync(wire.to_function("attacker/chosen-name", "id", ["x"]))
    assert value(registry, "statefun_requests_rejected_total", status="400") == 1
    assert value(registry, "statefun_requests_rejected_total", status="404") == 1
    assert "attacker/chosen-name" not in metrics_response(registry)[0].decode()


def test_labels_never_carry_an_id(
    handler: RequestReplyHandler, registry: CollectorRegistry
) -> None:
    handler.handle_sync(wire.to_function(GREETER, "secret-id-42", ["ann"], SEEN_2))
    with pytest.raises(FunctionFailedError):
        handler.handle_sync(wire.to_function(BROKEN, "secret-id-43", ["x"]))
    body, _ = metrics_response(registry)
    assert b"secret-id" not in body
    label_names = {
        name for family in registry.collect() for s in family.samples for name in s.labels
    }
    assert label_names <= {"function_type", "outcome", "kind", "status", "le"}


def test_metrics_response_is_the_text_exposition(
    handler: RequestReplyHandler, registry: CollectorRegistry
) -> None:
    handler.handle_sync(wire.to_function(GREETER, "ann", ["ann"], SEEN_2))
    body, content_type = metrics_response(registry)
    assert content_type.startswith("text/plain; version=")
    # what /metrics answers a scraper that asks for no format (prometheus_client 0.26's
    # CONTENT_TYPE_LATEST names version 1.0.0, which its own negotiation does not answer)
    endpoint = metrics_endpoint({}, registry)
    assert (body, content_type) == (endpoint.body, endpoint.headers["Content-Type"])
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert families["statefun_invocations"].type == "counter"
    assert families["statefun_batch_duration_seconds"].type == "histogram"


def test_metrics_response_defaults_to_the_default_registry() -> None:
    body, _ = metrics_response()
    assert b"python_info" in body  # a collector prometheus_client puts on REGISTRY


def test_a_batch_of_one_is_in_the_first_bucket_of_the_documented_ones(
    handler: RequestReplyHandler, registry: CollectorRegistry
) -> None:
    handler.handle_sync(wire.to_function(GREETER, "ann", ["ann"], SEEN_2))
    buckets = {
        s.labels["le"]: s.value
        for family in registry.collect()
        for s in family.samples
        if s.name == "statefun_batch_size_bucket"
    }
    bounds = ("1.0", "2.0", "5.0", "10.0", "20.0", "50.0", "100.0", "200.0", "500.0", "1000.0")
    assert buckets == {**dict.fromkeys(bounds, 1.0), "+Inf": 1.0}
    assert list(buckets) == [*bounds, "+Inf"]


def duration_bounds(registry: CollectorRegistry) -> list[str]:
    return [
        s.labels["le"]
        for family in registry.collect()
        for s in family.samples
        if s.name == "statefun_batch_duration_seconds_bucket" and s.labels["outcome"] == "ok"
    ]


def test_batch_durations_are_bucketed_from_a_fraction_of_a_millisecond_to_the_call_timeout(
    handler: RequestReplyHandler, registry: CollectorRegistry
) -> None:
    # a batch of quick functions takes well under a millisecond: prometheus_client's default
    # buckets (5 ms and up) would put every one in the first bucket; the runtime's call
    # timeout is 1 minute
    handler.handle_sync(wire.to_function(GREETER, "ann", ["ann"], SEEN_2))
    bounds = duration_bounds(registry)
    assert bounds[:3] == ["0.00025", "0.0005", "0.001"]
    assert bounds[-3:] == ["30.0", "60.0", "+Inf"]
    assert [float(b) for b in bounds[:-1]] == list(DURATION_BUCKETS)


def test_the_duration_buckets_can_be_chosen(registry: CollectorRegistry) -> None:
    plugin = PrometheusPlugin(registry, duration_buckets=(0.1, 1.0))
    plugins = make_plugin_manager([plugin], load_entrypoints=False)
    RequestReplyHandler(make_functions(), plugins=plugins).handle_sync(
        wire.to_function(GREETER, "ann", ["ann"], SEEN_2)
    )
    assert duration_bounds(registry) == ["0.1", "1.0", "+Inf"]


def test_the_metrics_endpoint_answers_the_text_format_by_default(
    handler: RequestReplyHandler, registry: CollectorRegistry
) -> None:
    handler.handle_sync(wire.to_function(GREETER, "ann", ["ann"], SEEN_2))
    response = metrics_endpoint({}, registry)
    assert response.status == 200
    assert list(response.headers) == ["Content-Type"]  # not gzipped
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    assert response.body == generate_latest(registry)


def test_the_metrics_endpoint_answers_openmetrics_gzipped_when_asked_in_any_case(
    handler: RequestReplyHandler, registry: CollectorRegistry
) -> None:
    handler.handle_sync(wire.to_function(GREETER, "ann", ["ann"], SEEN_2))
    asked = {"accept": "application/openmetrics-text; version=1.0.0", "accept-encoding": "gzip"}
    response = metrics_endpoint(asked, registry)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/openmetrics-text;")
    assert response.headers["Content-Encoding"] == "gzip"
    text = gzip.decompress(response.body).decode()
    assert text.endswith("# EOF\n")
    assert 'statefun_invocations_total{function_type="example/greeter",outcome="ok"} 1.0' in text


class Traces:
    """A tracer as the hooks see one: it names the batch's span in the reply's
    ``traceresponse`` (as statefun-opentelemetry does), sampled or not."""

    def __init__(self, flags: str) -> None:
        self.flags = flags

    @hookimpl
    def statefun_batch_started(self, batch: BatchEvent) -> None:
        batch.reply_headers["traceresponse"] = f"00-{TRACE_ID}-{SPAN_ID}-{self.flags}"


TRACE_ID, SPAN_ID = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"


def openmetrics(registry: CollectorRegistry) -> str:
    asked = {"accept": "application/openmetrics-text; version=1.0.0"}
    return metrics_endpoint(asked, registry).body.decode()


@pytest.mark.parametrize(
    "body",
    [wire.to_function(GREETER, "ann", ["ann"], SEEN_2), wire.to_function(BROKEN, "ann", ["ann"])],
    ids=["ok", "error"],
)
def test_a_traced_batchs_duration_has_its_span_as_exemplar(
    registry: CollectorRegistry, body: bytes
) -> None:
    """OpenMetrics shows the trace and span id of a sampled batch's span on the duration's
    bucket it fell in: a latency panel leads to the trace of a slow batch."""
    plugins = make_plugin_manager(
        [PrometheusPlugin(registry), Traces("01")], load_entrypoints=False
    )
    with contextlib.suppress(FunctionFailedError):
        RequestReplyHandler(make_functions(), plugins=plugins).handle_sync(body)
    (line,) = [
        line
        for line in openmetrics(registry).splitlines()
        if line.startswith("statefun_batch_duration_seconds_bucket") and " # " in line
    ]
    assert f'# {{span_id="{SPAN_ID}",trace_id="{TRACE_ID}"}}' in line


def test_an_unsampled_or_untraced_batch_has_no_exemplar(registry: CollectorRegistry) -> None:
    plugins = make_plugin_manager(
        [PrometheusPlugin(registry), Traces("00")], load_entrypoints=False
    )
    RequestReplyHandler(make_functions(), plugins=plugins).handle_sync(
        wire.to_function(GREETER, "ann", ["ann"], SEEN_2)
    )
    other = CollectorRegistry()
    plugins = make_plugin_manager([PrometheusPlugin(other)], load_entrypoints=False)
    RequestReplyHandler(make_functions(), plugins=plugins).handle_sync(
        wire.to_function(GREETER, "ann", ["ann"], SEEN_2)
    )
    for text in (openmetrics(registry), openmetrics(other)):
        assert "statefun_batch_duration_seconds_count" in text
        assert "trace_id" not in text


def test_the_exemplar_is_the_opentelemetry_batch_span(registry: CollectorRegistry) -> None:
    """With statefun-opentelemetry and the real SDK."""
    pytest.importorskip("opentelemetry.sdk")
    statefun_opentelemetry = pytest.importorskip("statefun_opentelemetry")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = statefun_opentelemetry.OpenTelemetryPlugin(tracer_provider=provider)
    plugins = make_plugin_manager([PrometheusPlugin(registry), tracing], load_entrypoints=False)
    RequestReplyHandler(make_functions(), plugins=plugins).handle_sync(
        wire.to_function(GREETER, "ann", ["ann"], SEEN_2)
    )
    provider.shutdown()
    (batch,) = [s for s in exporter.get_finished_spans() if s.name == f"process {GREETER}"]
    ids = f'span_id="{batch.context.span_id:016x}",trace_id="{batch.context.trace_id:032x}"'
    assert f"# {{{ids}}}" in openmetrics(registry)


def test_the_plugin_serves_its_registry_at_metrics_path(registry: CollectorRegistry) -> None:
    handler = RequestReplyHandler(make_functions())
    (endpoint,) = PrometheusPlugin(registry).statefun_endpoints(handler)
    assert (endpoint.method, endpoint.path) == ("GET", "/metrics")
    assert endpoint.handle({}).body == generate_latest(registry)
    other = CollectorRegistry()
    (moved,) = PrometheusPlugin(other, metrics_path="/custom").statefun_endpoints(handler)
    assert (moved.method, moved.path) == ("GET", "/custom")
    assert moved.handle({}).body == generate_latest(other)
    unserved = PrometheusPlugin(CollectorRegistry(), metrics_path=None)
    assert unserved.statefun_endpoints(handler) == []


def test_two_plugins_may_not_share_a_registry(registry: CollectorRegistry) -> None:
    PrometheusPlugin(registry)
    with pytest.raises(ValueError, match="Duplicated"):
        PrometheusPlugin(registry)


WORKER = """
import sys
from statefun_core import RequestReplyHandler
from statefun_core.plugins import make_plugin_manager
from statefun_core.testing import wire
sys.path.insert(0, {root!r})
from tests.test_prometheus_plugin import make_functions, wire, SEEN_2

handler = RequestReplyHandler(make_functions(), plugins=make_plugin_manager())
for _ in range({requests}):
    handler.handle_sync(wire.to_function("example/greeter", "ann", ["ann", "bob"], SEEN_2))
"""

READER = """
import sys
from statefun_prometheus import metrics_response
sys.stdout.write(metrics_response()[0].decode())
"""


def run(script: str, directory: Path, variable: str = "PROMETHEUS_MULTIPROC_DIR") -> str:
    env = {**os.environ, variable: str(directory)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def sample(body: str, name: str, labels: dict[str, str]) -> Optional[float]:
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return None


def test_multiprocess_mode_merges_the_metrics_of_every_worker(tmp_path: Path) -> None:
    root = str(Path(__file__).parent.parent)
    run(WORKER.format(root=root, requests=2), tmp_path)
    run(WORKER.format(root=root, requests=3), tmp_path)
    assert list(tmp_path.glob("*.db")), "the workers wrote no multiprocess files"
    body = run(READER, tmp_path)
    labels = {"function_type": GREETER, "outcome": "ok"}
    assert sample(body, "statefun_invocations_total", labels) == 10
    assert sample(body, "statefun_batch_size_count", {"function_type": GREETER}) == 5


def test_multiprocess_mode_is_on_with_the_deprecated_lowercase_variable_too(
    tmp_path: Path,
) -> None:
    """prometheus_client still takes ``prometheus_multiproc_dir``: its workers write their
    files there, and a process that has counted nothing yet reads them merged as well."""
    root = str(Path(__file__).parent.parent)
    run(WORKER.format(root=root, requests=2), tmp_path, "prometheus_multiproc_dir")
    assert list(tmp_path.glob("*.db")), "the worker wrote no multiprocess files"
    body = run(READER, tmp_path, "prometheus_multiproc_dir")
    labels = {"function_type": GREETER, "outcome": "ok"}
    assert sample(body, "statefun_invocations_total", labels) == 4


IMPORTED_FIRST = """
import logging, os, sys
import prometheus_client  # as gunicorn.conf.py does, before gunicorn applies --env/raw_env
os.environ[{variable!r}] = {directory!r}
logging.basicConfig(stream=sys.stdout, format="%(levelname)s %(name)s: %(message)s")
sys.path.insert(0, {root!r})
from tests.test_prometheus_plugin import make_functions, wire, SEEN_2
from statefun_core import RequestReplyHandler
from statefun_core.plugins import make_plugin_manager

handler = RequestReplyHandler(make_functions(), plugins=make_plugin_manager())
handler.handle_sync(wire.to_function("example/greeter", "ann", ["ann"], SEEN_2))
"""


def test_a_multiprocess_dir_set_after_prometheus_client_was_imported_is_a_warning(
    tmp_path: Path,
) -> None:
    root = str(Path(__file__).parent.parent)
    variable, directory = "PROMETHEUS_MULTIPROC_DIR", str(tmp_path)
    script = IMPORTED_FIRST.format(variable=variable, directory=directory, root=root)
    unset = {k: v for k, v in os.environ.items() if k.upper() != variable}
    done = subprocess.run(
        [sys.executable, "-c", script], env=unset, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert not list(tmp_path.glob("*.db"))  # what /metrics merges: nothing of this process
    assert done.stdout.startswith(
        "WARNING statefun_prometheus: PROMETHEUS_MULTIPROC_DIR is set, but prometheus_client "
        "was imported before it was"
    )
    assert "Set it in the environment the server starts with." in done.stdout
    # set before the import, as the README says: no warning, and the files are written
    assert run(script, tmp_path) == ""
    assert list(tmp_path.glob("*.db"))


OWN_REGISTRY = """
import sys
from prometheus_client import CollectorRegistry
from statefun_core import RequestReplyHandler, make_plugin_manager
sys.path.insert(0, {root!r})
from statefun_prometheus import PrometheusPlugin, metrics_endpoint, metrics_response
from statefun_prometheus.plugin import DURATION_BUCKETS
from tests.test_prometheus_plugin import make_functions, wire, SEEN_2

registry = CollectorRegistry()
plugins = make_plugin_manager([PrometheusPlugin(registry)], blocked=["prometheus"])
handler = RequestReplyHandler(make_functions(), plugins=plugins)
for _ in range({requests}):
    handler.handle_sync(wire.to_function("example/greeter", "ann", ["ann", "bob"], SEEN_2))
if {read}:
    assert metrics_endpoint({{}}, registry).body == metrics_response(registry)[0]
    sys.stdout.write(metrics_response(registry)[0].decode())
"""


def test_multiprocess_mode_merges_the_workers_of_a_registry_of_their_own(tmp_path: Path) -> None:
    root = str(Path(__file__).parent.parent)
    run(OWN_REGISTRY.format(root=root, requests=2, read=False), tmp_path)
    body = run(OWN_REGISTRY.format(root=root, requests=3, read=True), tmp_path)
    labels = {"function_type": GREETER, "outcome": "ok"}
    assert sample(body, "statefun_invocations_total", labels) == 10  # not this worker's 6


def test_the_package_declares_its_api() -> None:
    assert statefun_prometheus.__all__ == [
        "PrometheusPlugin",
        "metrics_endpoint",
        "metrics_response",
    ]
