"""The handler in process over many requests, each kind of request in turn: what it keeps.

    python benchmarks/soak/handler.py [--requests 50000] [--async] [--plugins]

Requests in turn: a new address without its states (the missing-state round), a function that
raises, malformed bytes (400), an unknown function of a new typename (404), a body over the
limit (413), a state name misspelt (the "did you mean" error), an async function, an argument
of a new typename, and a batch of three with a caller that writes 12 states, sends a message, a
delayed message, a cancellation and an egress record. ``--plugins`` loads the installed plugins
(statefun-prometheus, statefun-opentelemetry with the SDK's tracer provider and an in-memory
exporter, emptied as it goes). Printed at a tenth, half and all of the run: memory traced by
tracemalloc, RSS, file descriptors, threads, loggers, GC-tracked objects; then the allocations
that grew most from the first checkpoint to the last, by traceback, and the statefun_ samples
of the Prometheus registry (they must not grow with typenames or addresses).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import threading
import tracemalloc
from datetime import timedelta
from pathlib import Path
from typing import Any

from statefun_core import (
    Context,
    IntType,
    Limits,
    Message,
    RequestReplyHandler,
    StatefulFunctions,
    ValueSpec,
    kafka_egress_message,
    make_plugin_manager,
    message_builder,
)
from statefun_core.errors import StatefunError
from statefun_core.testing.wire import to_function

STATES = [f"s{i}" for i in range(12)]
FULL = {name: i for i, name in enumerate(STATES)}
functions = StatefulFunctions()


@functions.bind("soak/counter", specs=[ValueSpec(name, IntType) for name in STATES])
def counter(context: Context, message: Message) -> None:
    value = message.as_int()  # an argument of another type raises
    if value == 13:
        raise ValueError("a deliberate failure")
    if value == 14:
        context.storage.s_1  # noqa: B018 (an undeclared state)
    for name in STATES:
        setattr(context.storage, name, (getattr(context.storage, name) or 0) + 1)
    me = context.address.id
    other = message_builder(target_typename="soak/other", target_id=me, int_value=value)
    context.send(other)
    context.send_after(timedelta(seconds=5), other, cancellation_token=f"t-{me}")
    context.cancel_delayed_message(f"t-{me}-before")
    context.send_egress(kafka_egress_message(typename="soak/out", topic="t", key=me, value="v"))


@functions.bind("soak/async", specs=[ValueSpec("n", IntType)])
async def counter_async(context: Context, message: Message) -> None:
    await asyncio.sleep(0)
    if message.as_int() == 13:
        raise RuntimeError("a deliberate failure")
    context.storage.n = (context.storage.n or 0) + 1


def request(i: int) -> bytes:
    id = f"id-{i}"
    kinds: list[Any] = [
        lambda: to_function("soak/counter", id, [1], {}),
        lambda: to_function("soak/counter", id, [13], FULL),
        lambda: b"\xff\xff not a ToFunction " + str(i).encode(),
        lambda: to_function(f"soak/unknown{i}", id, [1]),
        lambda: b"\x0a" + bytes(5000),
        lambda: to_function("soak/counter", id, [14], FULL),
        lambda: to_function("soak/async", id, [1, 2, 13][: 1 + i % 3], {"n": 1}),
        lambda: to_function("soak/counter", id, [f"a str, not an int {i}"], FULL),
        lambda: to_function("soak/counter", id, [1, 2, 3], FULL, caller=("soak/caller", id)),
    ]
    return bytes(kinds[i % len(kinds)]())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--async", dest="use_async", action="store_true")
    parser.add_argument("--plugins", action="store_true")
    args = parser.parse_args()
    exporter = None
    if args.plugins:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
    logging.getLogger("statefun_core").setLevel(logging.CRITICAL)  # a traceback per failure
    plugins = make_plugin_manager(load_entrypoints=args.plugins)
    handler = RequestReplyHandler(functions, plugins=plugins, limits=Limits(request_bytes=4096))
    loop = asyncio.new_event_loop()
    statuses: dict[int, int] = {}
    checkpoints = {args.requests // 10, args.requests // 2, args.requests}
    snapshots = []
    tracemalloc.start(12)
    for i in range(1, args.requests + 1):
        body = request(i)
        headers = {"traceparent": f"00-{i:032x}-{i:016x}-01"}
        try:
            if args.use_async:
                loop.run_until_complete(handler.handle_async(body, headers, {}))
            else:
                handler.handle_sync(body, headers, {})
            status = 200
        except StatefunError as error:
            status = error.status
        statuses[status] = statuses.get(status, 0) + 1
        if exporter is not None and i % 1000 == 0:
            exporter.clear()
        if i in checkpoints:
            gc.collect()
            snapshots.append(tracemalloc.take_snapshot())
            pages = int(Path("/proc/self/statm").read_text().split()[1])
            rss = pages * os.sysconf("SC_PAGE_SIZE")
            print(f"{i}: traced {tracemalloc.get_traced_memory()[0] / 1024:.0f} KiB, "
                  f"rss {rss / 2**20:.1f} MiB, fds {len(os.listdir('/proc/self/fd'))}, "
                  f"threads {threading.active_count()}, "
                  f"loggers {len(logging.Logger.manager.loggerDict)}, "
                  f"objects {len(gc.get_objects())}", flush=True)  # fmt: skip
    print("statuses:", statuses)
    for stat in snapshots[-1].compare_to(snapshots[0], "traceback")[:5]:
        print(stat, *stat.traceback.format()[-6:], sep="\n    ")
    if args.plugins:
        from prometheus_client import REGISTRY

        samples = sum(len(m.samples) for m in REGISTRY.collect() if m.name.startswith("statefun"))
        print("statefun_ samples:", samples)


if __name__ == "__main__":
    main()
