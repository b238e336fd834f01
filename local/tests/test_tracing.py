"""One trace through statefun-local: an HTTP ingress request with a ``traceparent``, three
functions served by statefun-aiohttp with statefun-opentelemetry, an egress record; the trace
context kept in real SQLite."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Optional

import aiohttp
import pytest
from aiohttp import web
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind
from statefun_aiohttp import create_app
from statefun_local import LocalRuntime, make_app, parse_module
from statefun_local import store as local_store
from statefun_local.store import SqliteStore
from statefun_opentelemetry import OpenTelemetryPlugin

from statefun_core import (
    Context,
    Message,
    StatefulFunctions,
    kafka_egress_message,
    message_builder,
)
from statefun_core.engine import Address, EgressRecord, Envelope, Timer, TraceContext, TypedValue
from statefun_core.plugins import make_plugin_manager

from .conftest import module_yaml, run, serving

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
INGRESS = f"00-{TRACE_ID}-b7ad6b7169203331-01"
STATE = "vendor=value,other=1"
FIRST, SECOND, THIRD = "com.example/first", "com.example/second", "com.example/third"


def chain() -> StatefulFunctions:
    """first -> second -> third -> the egress ``com.example/out``."""
    functions = StatefulFunctions()

    @functions.bind(FIRST)
    def first(context: Context, message: Message) -> None:
        context.send(message_builder(SECOND, "all", str_value=message.as_string()))

    @functions.bind(SECOND)
    def second(context: Context, message: Message) -> None:
        context.send(message_builder(THIRD, context.address.id, str_value=message.as_string()))

    @functions.bind(THIRD)
    def third(context: Context, message: Message) -> None:
        context.send_egress(
            kafka_egress_message("com.example/out", topic="t", key="k", value=message.as_string())
        )

    return functions


@contextlib.asynccontextmanager
async def served(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def batch_span(exporter: InMemorySpanExporter, typename: str) -> ReadableSpan:
    (span,) = [s for s in exporter.get_finished_spans() if s.name == f"process {typename}"]
    return span


def traceparent(span: ReadableSpan) -> str:
    context = span.context
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def test_one_trace_from_the_ingress_through_three_functions_to_the_egress(
    tmp_path: Path,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    plugins = make_plugin_manager(
        [OpenTelemetryPlugin(tracer_provider=provider)], load_entrypoints=False
    )
    db = tmp_path / "db.sqlite"

    async def scenario() -> list[dict[str, object]]:
        async with served(create_app(chain(), plugins=plugins)) as functions_url:
            module = parse_module(module_yaml(f"{functions_url}/"))
            async with (
                LocalRuntime(module, db, offline=True) as runtime,
                served(make_app(runtime)) as runtime_url,
                aiohttp.ClientSession() as session,
            ):
                async with session.post(
                    f"{runtime_url}/ingress/{FIRST}/ann",
                    json={"type": "string", "value": "hello"},
                    headers={"traceparent": INGRESS, "tracestate": STATE},
                ) as response:
                    assert response.status == 202, await response.text()
                await runtime.wait_until_idle()
                return runtime.egress_records()

    (record,) = run(scenario())
    provider.shutdown()

    first, second, third = (batch_span(exporter, name) for name in (FIRST, SECOND, THIRD))
    assert {format(s.context.trace_id, "032x") for s in exporter.get_finished_spans()} == {TRACE_ID}
    assert all(s.kind is SpanKind.SERVER for s in (first, second, third))
    assert first.parent is not None and format(first.parent.span_id, "016x") == INGRESS[36:52]
    assert second.parent is not None and second.parent.span_id == first.context.span_id
    assert third.parent is not None and third.parent.span_id == second.context.span_id
    for sender, receiver in ((first, SECOND), (second, THIRD)):
        (invocation,) = [s for s in exporter.get_finished_spans() if s.name == receiver]
        assert [link.context.span_id for link in invocation.links] == [sender.context.span_id]
    # the egress record names the batch that sent it, in the view and in the SQLite file, and
    # keeps the ingress' tracestate: a traceresponse has none, and the trace is the same
    assert (record["traceparent"], record["tracestate"]) == (traceparent(third), STATE)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT traceparent, tracestate FROM egress").fetchall()
    assert rows == [(traceparent(third), STATE)]


ORIGIN = TraceContext(INGRESS, "vendor=value")
VALUE = TypedValue("io.statefun.types/string", b"x")
A, B = Address(FIRST, "a"), Address(SECOND, "b")


def test_trace_contexts_survive_a_reopen_of_the_database(tmp_path: Path) -> None:
    store = SqliteStore.open(tmp_path / "db.sqlite")
    with store.transaction():
        store.mailbox_append(Envelope(A, VALUE, None, trace=ORIGIN))
        store.mailbox_append(Envelope(A, VALUE, B))
        store.timer_add(Timer(100, A, VALUE, B, trace=ORIGIN))
        store.egress_append(EgressRecord("com.example/out", VALUE, trace=ORIGIN))
    store.close()

    store = SqliteStore.open(tmp_path / "db.sqlite")
    assert [m.trace for m in store.mailbox_peek(A)] == [ORIGIN, None]
    assert [t.trace for t in store.timers()] == [ORIGIN]
    assert [r.trace for r in store.egress_list()] == [ORIGIN]
    store.close()


def test_a_database_made_before_trace_contexts_gets_the_columns(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite"
    old_schema = local_store._SCHEMA.replace(",\n    traceparent TEXT, tracestate TEXT", "")
    assert "traceparent" not in old_schema
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.executescript(old_schema)
        conn.execute("INSERT INTO meta VALUES ('schema_version', 1)")
        conn.execute(
            "INSERT INTO mailbox (target_type, target_id, arg_typename, arg_has_value, arg_value)"
            " VALUES (?, ?, ?, 1, ?)",
            (A.typename, A.id, VALUE.typename, VALUE.value),
        )
        conn.commit()

    store = SqliteStore.open(db)
    (old,) = store.mailbox_peek(A)
    assert old.trace is None and old.argument == VALUE
    with store.transaction():
        store.mailbox_append(Envelope(A, VALUE, trace=ORIGIN))
    assert [m.trace for m in store.mailbox_peek(A)] == [None, ORIGIN]
    store.close()


def test_a_message_the_policy_dead_letters_keeps_its_trace(tmp_path: Path) -> None:
    from statefun_local import DeadLetterPolicy

    from .test_stuck import FRAGILE, POISON, fragile_functions

    async def scenario() -> list[dict[str, object]]:
        async with serving(
            fragile_functions(), tmp_path / "db.sqlite", call="300ms",
            dead_letters=DeadLetterPolicy(after=2),
        ) as (_, runtime):  # fmt: skip
            value = TypedValue("io.statefun.types/string", b"\n\x06" + POISON.encode())
            await runtime.send(Address(FRAGILE, "x"), value, TraceContext.parse(INGRESS))
            await runtime.wait_until_idle()
            return runtime.egress_records()

    (record,) = run(scenario())
    assert record["traceparent"] == INGRESS


@pytest.mark.parametrize("factory_trace_id", [None, "from-the-factory"])
def test_the_line_of_a_failed_call_carries_the_trace_id_of_its_batch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, factory_trace_id: Optional[str]
) -> None:
    """A user who finds a failed batch span searches the runtime's log by its trace id: the
    line of the call that failed carries it as the record's ``trace_id`` (as the SDK's lines
    do, for ``InvocationLogFilter`` and structlog's ``ExtraAdder``). An application whose
    record factory sets ``trace_id`` itself still gets the line, with the factory's value
    (``logging`` raises ``KeyError`` for an ``extra`` that would overwrite it)."""
    from .test_stuck import FRAGILE, POISON, fragile_functions

    async def scenario() -> None:
        async with serving(fragile_functions(), tmp_path / "db.sqlite", call="300ms") as (
            _,
            runtime,
        ):
            value = TypedValue("io.statefun.types/string", b"\n\x06" + POISON.encode())
            await runtime.send(Address(FRAGILE, "x"), value, TraceContext.parse(INGRESS))
            while not runtime.failures:
                await asyncio.sleep(0.01)

    standard = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = standard(*args, **kwargs)
        record.trace_id = factory_trace_id
        return record

    if factory_trace_id is not None:
        logging.setLogRecordFactory(factory)
    try:
        with caplog.at_level(logging.ERROR, logger="statefun_local"):
            run(scenario())
    finally:
        logging.setLogRecordFactory(standard)
    failed = [r for r in caplog.records if r.name == "statefun_local"]
    assert failed, caplog.text
    expected = factory_trace_id or TRACE_ID
    assert {getattr(r, "trace_id", None) for r in failed} == {expected}, caplog.text
