"""A fresh plugin on a real registry, its handler shared by many threads with a thread switch
between almost any two bytecodes: every batch, invocation and byte is counted once, also for
the function types first met by several threads at once."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client import CollectorRegistry
from statefun_prometheus import PrometheusPlugin

from statefun_core import (
    Context,
    IntType,
    Message,
    RequestReplyHandler,
    StatefulFunctions,
    ValueSpec,
    message_builder,
)
from statefun_core.plugins import make_plugin_manager
from statefun_core.testing import wire

THREADS = 8
REQUESTS = 5  # per thread and function type
TYPES = [f"t/greeter-{i}" for i in range(6)]


def make_functions() -> StatefulFunctions:
    functions = StatefulFunctions()

    def greet(context: Context, message: Message) -> None:
        context.storage.seen = (context.storage.seen or 0) + 1
        context.send(message_builder(target_typename="t/inbox", target_id="x", str_value="hi"))

    for typename in TYPES:
        functions.register(typename, greet, [ValueSpec("seen", IntType)])
    return functions


@pytest.fixture
def switching_often() -> Iterator[None]:
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


def serve(handler: RequestReplyHandler, start: threading.Barrier, thread: int) -> None:
    start.wait()  # every thread's first batch at once, of a type no thread has counted yet
    for n in range(REQUESTS):
        for typename in TYPES[thread % len(TYPES) :] + TYPES[: thread % len(TYPES)]:
            handler.handle_sync(
                wire.to_function(typename, f"{thread}-{n}", ["a", "b"], {"seen": 1})
            )


def test_a_fresh_plugins_counts_from_many_threads_are_exact(switching_often: None) -> None:
    for _ in range(20):
        registry = CollectorRegistry()
        plugins = make_plugin_manager([PrometheusPlugin(registry)], load_entrypoints=False)
        handler = RequestReplyHandler(make_functions(), plugins=plugins)
        start = threading.Barrier(THREADS)
        with ThreadPoolExecutor(THREADS) as pool:
            for served in [pool.submit(serve, handler, start, i) for i in range(THREADS)]:
                served.result()
        batches = float(THREADS * REQUESTS)
        for typename in TYPES:
            counted = {
                name: registry.get_sample_value(name, {"function_type": typename, **labels})
                for name, labels in [
                    ("statefun_batches_total", {"outcome": "ok"}),
                    ("statefun_invocations_total", {"outcome": "ok"}),
                    ("statefun_batch_size_count", {}),
                    ("statefun_batch_size_sum", {}),
                    ("statefun_state_read_bytes_total", {}),  # an IntWrapper: 5 bytes
                    ("statefun_outgoing_messages_total", {"kind": "message"}),
                ]
            }
            assert counted == {
                "statefun_batches_total": batches,
                "statefun_invocations_total": 2 * batches,
                "statefun_batch_size_count": batches,
                "statefun_batch_size_sum": 2 * batches,
                "statefun_state_read_bytes_total": 5 * batches,
                "statefun_outgoing_messages_total": 2 * batches,
            }
