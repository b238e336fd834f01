"""statefun-local against a real broker: where each ingress starts (every ``startupPosition``),
a record no function can take, a record's W3C trace context from its headers through the
function to the egress record's headers, and the broker going away and coming back mid-run.

(Every scenario of test_scenarios.py, and the kill -9 of test_crash.py, also run on
statefun-local, Kafka in and Kafka out.)
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from statefun_core import Context, Message, StatefulFunctions, kafka_egress_message
from statefun_core.plugins import make_plugin_manager

from . import kit
from .test_scenarios import string

MODULE = """
kind: io.statefun.endpoints.v2/http
spec:
  functions: e2e.fns/*
  urlPathTemplate: {url}
---
kind: io.statefun.kafka.v1/ingress
spec:
  id: e2e/in
  address: {kafka}
  consumerGroupId: {group}
  startupPosition: {startup}
  topics:
    - topic: {prefix}counter
      valueType: io.statefun.types/string
      targets: [e2e.fns/counter]
---
kind: io.statefun.kafka.v1/egress
spec:
  id: e2e/out
  address: {kafka}
  deliverySemantic: {{type: exactly-once, transactionTimeout: 1min}}
"""


class Local(kit.LocalWithFunctions):
    """statefun-local with the counter function on its own topics: each record's key is its
    own id, so the keys of the ``counts`` records are the records it took."""

    def __init__(self, kafka: kit.Kafka, workdir: Path) -> None:
        super().__init__(workdir)
        self.kafka = kafka
        self.inbox = self.prefix + "counter"
        kafka.create_topics([self.inbox, self.prefix + "counts"], partitions=2)

    def start(self, startup: str = "{type: earliest}", group: str = "") -> None:
        self.start_module(MODULE.format(
            url=self.url, kafka=self.kafka.bootstrap, group=group or self.prefix + "group",
            startup=startup, prefix=self.prefix,
        ))  # fmt: skip

    def taken(self, count: int, settle: float = 2) -> list[str]:
        """The keys of the records the ingress took (each record counted once, as 1)."""
        records = self.kafka.read(self.prefix + "counts", count, timeout=60, settle=settle)
        assert all(record.text == "1" for record in records), [r.text for r in records]
        return sorted(record.key or "" for record in records)


@pytest.fixture
def local(kafka: kit.Kafka, tmp_path: Path) -> Iterator[Local]:
    app = Local(kafka, tmp_path)
    try:
        yield app
    finally:
        app.stop()


def produce_before(local: Local, label: str) -> None:
    """Two records on each partition, keyed ``<label>-<partition>-<n>``."""
    for partition in (0, 1):
        local.kafka.produce(local.inbox, [(f"{label}-{partition}-{n}", string("+1"))
                                          for n in range(2)], partition=partition)  # fmt: skip


def everything(label: str) -> list[str]:
    return sorted(f"{label}-{partition}-{n}" for partition in (0, 1) for n in range(2))


def test_earliest(local: Local) -> None:
    produce_before(local, "old")
    local.start("{type: earliest}")
    assert local.taken(4) == everything("old")


def test_latest_takes_only_what_comes_after_it_starts(local: Local) -> None:
    produce_before(local, "old")
    local.start("{type: latest}")
    local.wait_for("ingress", partitions=2)
    time.sleep(1)  # the end offsets are fetched just after the assignment
    produce_before(local, "new")
    assert local.taken(4) == everything("new")


def test_group_offsets_start_where_the_group_committed(local: Local) -> None:
    from confluent_kafka import Consumer, TopicPartition

    produce_before(local, "old")
    group = local.prefix + "committed"
    committer = Consumer({"bootstrap.servers": local.kafka.bootstrap, "group.id": group})
    committer.commit(offsets=[TopicPartition(local.inbox, 0, 1), TopicPartition(local.inbox, 1, 2)],
                     asynchronous=False)  # fmt: skip
    committer.close()
    local.start("{type: group-offsets}", group=group)
    assert local.taken(1) == ["old-0-1"]


def test_specific_offsets(local: Local) -> None:
    produce_before(local, "old")
    local.start(f"{{type: specific-offsets, offsets: [{local.inbox}/0: 1, {local.inbox}/1: 0]}}")
    assert local.taken(3) == ["old-0-1", "old-1-0", "old-1-1"]


def test_date(local: Local) -> None:
    now = int(time.time() * 1000)
    for partition in (0, 1):
        local.kafka.produce(local.inbox, [(f"before-{partition}", string("+1"))],
                            partition=partition, timestamp=now - 3_600_000)  # fmt: skip
        local.kafka.produce(local.inbox, [(f"after-{partition}", string("+1"))],
                            partition=partition, timestamp=now)  # fmt: skip
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now / 1000 - 60))
    local.start(f"{{type: date, date: '{stamp}.000 +0000'}}")
    assert local.taken(2) == ["after-0", "after-1"]


def test_a_record_without_a_key_or_a_value_is_reported_and_passed_over(local: Local) -> None:
    """The runtime fails the job on either (no key: its deserializer refuses it; no value, a
    tombstone: it wraps the null into a ByteString)."""
    local.kafka.produce(local.inbox, [("first", string("+1"))], partition=0)
    local.kafka.produce(local.inbox, [(None, string("+1"))], partition=0)
    local.kafka.produce(local.inbox, [("tombstone", None)], partition=0)
    local.kafka.produce(local.inbox, [("fourth", string("+1"))], partition=0)
    local.start()
    assert local.taken(2) == ["first", "fourth"]
    assert local.connection("ingress")["skipped"] == [
        f"{local.inbox}/0@1: a record without a key can not be routed to an id",
        f"{local.inbox}/0@2: a record without a value (a tombstone) can not be a message",
    ]


# --- the W3C trace context, Kafka in and Kafka out ---------------------------------------------

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
TRACESTATE = "vendor=value"
#: the function's own header, on the record whose value is "own"
OWN_TRACEPARENT = "00-11111111111111111111111111111111-2222222222222222-01"
ECHO = "e2e.fns/counter"  # MODULE's function, which reads the topic <prefix>counter


def echo_functions(topic: str) -> StatefulFunctions:
    """The echo (MODULE's ``e2e.fns/counter``) writes each message to ``topic``, keyed by its
    id; the message "own" with a ``traceparent`` header of the function's own."""
    functions = StatefulFunctions()

    @functions.bind(ECHO)
    def echo(context: Context, message: Message) -> None:
        text = message.as_string()
        headers = [("traceparent", OWN_TRACEPARENT)] if text == "own" else []
        context.send_egress(kafka_egress_message("e2e/out", topic, text, key=context.address.id,
                                                 headers=headers))  # fmt: skip

    return functions


@contextlib.contextmanager
def serving(functions: StatefulFunctions, plugins: Any) -> Iterator[str]:
    """``functions`` served by statefun-aiohttp with ``plugins``, on a thread of this process
    (where the test reads the spans they made): its URL."""
    from aiohttp import web
    from statefun_aiohttp import create_app

    loop = asyncio.new_event_loop()
    runner = web.AppRunner(create_app(functions, plugins=plugins), access_log=None)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    thread = threading.Thread(target=loop.run_forever, name="functions", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.run_until_complete(runner.cleanup())
        loop.close()


def run_traced(
    kafka: kit.Kafka, tmp_path: Path, plugins: Any, records: list[tuple[str, list[tuple[str, str]]]]
) -> dict[str, kit.Record]:
    """Each ``(key, headers)`` record (its value: its key) through the echo on
    statefun-local, with the function server's ``plugins``: the egress records by key."""
    prefix = f"local-{uuid.uuid4().hex[:6]}-"
    kafka.create_topics([prefix + "counter", prefix + "out"], partitions=1)
    for key, headers in records:
        kafka.produce(prefix + "counter", [(key, string(key))], headers=headers)
    with serving(echo_functions(prefix + "out"), plugins) as url:
        module = tmp_path / "module.yaml"
        module.write_text(MODULE.format(url=url, kafka=kafka.bootstrap, group=prefix + "group",
                                        startup="{type: earliest}", prefix=prefix))  # fmt: skip
        runtime, _ = kit.LOCAL.start(module, tmp_path)
        try:
            out = kafka.read(prefix + "out", len(records), timeout=60)
        finally:
            runtime.stop()
    return {record.key or "": record for record in out}


def test_a_records_trace_reaches_the_traced_function_and_its_egress_record(
    kafka: kit.Kafka, tmp_path: Path
) -> None:
    """The function server traces with statefun-opentelemetry (the real SDK): the record's
    trace context is the parent of the batch's span, whose ``traceresponse`` is the trace
    context of the egress record; a function's own ``traceparent`` header wins."""
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from statefun_opentelemetry import OpenTelemetryPlugin

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    plugins = make_plugin_manager([OpenTelemetryPlugin(tracer_provider=provider)],
                                  load_entrypoints=False)  # fmt: skip
    traced = [("traceparent", TRACEPARENT), ("tracestate", TRACESTATE)]
    out = run_traced(kafka, tmp_path, plugins, [("traced", traced), ("own", traced),
                                                ("plain", [])])  # fmt: skip
    provider.shutdown()

    def batch_span(key: str) -> ReadableSpan:
        (span,) = [s for s in exporter.get_finished_spans()
                   if s.name.startswith("process ")
                   and (s.attributes or {})["statefun.function.id"] == key]  # fmt: skip
        return span

    def traceparent(span: ReadableSpan) -> bytes:
        context = span.context
        flags = int(context.trace_flags)
        return f"00-{context.trace_id:032x}-{context.span_id:016x}-{flags:02x}".encode()

    traced_span, plain_span = batch_span("traced"), batch_span("plain")
    # the function server got the record's trace context: its span continues the trace
    assert traced_span.parent is not None
    assert f"{traced_span.parent.trace_id:032x}" == TRACE_ID
    assert f"{traced_span.parent.span_id:016x}" == TRACEPARENT[36:52]
    # a traceresponse has no tracestate: the record's own goes on with its trace
    assert out["traced"].headers == [("traceparent", traceparent(traced_span)),
                                     ("tracestate", TRACESTATE.encode())]  # fmt: skip
    assert out["own"].headers == [("traceparent", OWN_TRACEPARENT.encode())]
    # a record without one: the trace the function server started
    assert plain_span.parent is None and f"{plain_span.context.trace_id:032x}" != TRACE_ID
    assert out["plain"].headers == [("traceparent", traceparent(plain_span))]


def test_a_records_trace_context_reaches_the_egress_record_through_an_untraced_function(
    kafka: kit.Kafka, tmp_path: Path
) -> None:
    """Without a tracing plugin the function server answers no ``traceresponse``: the egress
    record carries the record's own trace context, ``tracestate`` too. A malformed
    ``traceparent`` is no trace context."""
    plugins = make_plugin_manager([], load_entrypoints=False)
    out = run_traced(kafka, tmp_path, plugins, [
        ("traced", [("traceparent", TRACEPARENT), ("tracestate", TRACESTATE)]),
        ("malformed", [("traceparent", "00-not-a-trace"), ("tracestate", TRACESTATE)]),
        ("plain", []),
    ])  # fmt: skip
    assert out["traced"].headers == [("traceparent", TRACEPARENT.encode()),
                                     ("tracestate", TRACESTATE.encode())]  # fmt: skip
    assert out["malformed"].headers == []
    assert out["plain"].headers == []


def test_the_broker_going_away_and_coming_back(tmp_path: Path) -> None:
    kafka = kit.Kafka(tmp_path / "broker")
    (tmp_path / "broker").mkdir()
    kafka.start()
    local = Local(kafka, tmp_path)
    try:
        local.start()
        kafka.produce(local.inbox, [(f"before-{n}", string("+1")) for n in range(20)])
        assert len(local.taken(20, settle=0)) == 20
        kafka.process.stop()  # type: ignore[union-attr]
        local.wait_for("ingress", timeout=90, state="unreachable")
        assert local.runtime.alive()
        kafka.restart()
        kafka.produce(local.inbox, [(f"after-{n}", string("+1")) for n in range(20)])
        expected = [f"{when}-{n}" for when in ("before", "after") for n in range(20)]
        assert local.taken(40, settle=3) == sorted(expected)
        assert local.wait_for("ingress", state="connected")["error"] is None
    finally:
        local.stop()
        kafka.stop()


CHROMIUM = shutil.which("chromium")


def chromium(url: str, profile: Path, *options: str) -> str:
    """What headless Chromium makes of ``url`` once its scripts ran: the DOM (or a file)."""
    assert CHROMIUM is not None, "chromium is not installed (.ci/run installs Debian's)"
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=4000",
               *options, url]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_web_page_shows_the_connections_in_a_browser(local: Local, tmp_path: Path) -> None:
    local.kafka.produce(local.inbox, [("Ann", string("+1"))])
    local.start()
    assert local.taken(1, settle=0) == ["Ann"]
    local.wait_for("egress", state="connected")
    url = f"http://127.0.0.1:{local.port}/"
    dom = chromium(url, tmp_path / "profile", "--dump-dom")
    rows = re.findall(r"<tr>(.*?)</tr>", dom.split('id="connections"')[1].split("</tbody>")[0])
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in rows]
    assert [row[:4] for row in cells] == [
        ["ingress", "e2e/in", local.kafka.bootstrap, "connected"],
        ["egress", "e2e/out", local.kafka.bootstrap, "connected"],
    ]
    assert cells[0][4] == f"{local.inbox} · {local.prefix}group" and cells[0][5] == "1"
    assert cells[1][4] == "exactly-once" and cells[1][5] == "1"
    assert f"topic={local.prefix}counts key=Ann value=1" in dom
    screenshot = tmp_path / "page.png"  # for a person to look at: pytest keeps tmp_path
    chromium(url, tmp_path / "profile", f"--screenshot={screenshot}", "--window-size=1280,900")
    assert screenshot.stat().st_size > 10_000
