"""One handler shared by many threads, as a threaded server (gunicorn ``--threads``, waitress)
shares it: every thread's first requests find the handler fresh, with thread switches forced
between almost every bytecode (``sys.setswitchinterval``), and get the replies one thread gets."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import pytest

from statefun_core import RequestReplyHandler, hookimpl
from statefun_core.plugins import BatchEvent

from .threaded import THREADS, comparable, new_handler, requests

ROUNDS = 30


class Batches:
    """What the plugins heard of each batch: its function, id, outcome and counts."""

    def __init__(self) -> None:
        self.finished: Counter[tuple[Any, ...]] = Counter()

    @hookimpl
    def statefun_batch_finished(self, batch: BatchEvent) -> None:
        self.finished[
            batch.function_type,
            batch.function_id,
            batch.outcome,
            batch.state_bytes_read,
            batch.state_bytes_written,
            batch.messages,
            batch.delayed_messages,
            batch.egress_records,
            batch.dead_letters,
        ] += 1


def drive(handler: RequestReplyHandler, driver: str) -> Callable[[bytes], Any]:
    """The handler's reply to a request, but for the time of its dead-letter records."""
    if driver == "handle_sync":
        return lambda data: comparable(handler.handle_sync(data))
    # a loop per server thread, as each thread of an ASGI server's would be
    return lambda data: comparable(asyncio.run(handler.handle_async(data)))


def at_once(
    serve: Callable[[bytes], Any],
) -> tuple[dict[tuple[str, str], Any], list[BaseException]]:
    """Each thread's requests served, every thread's first one at once: the replies by
    function and id, and what was raised."""
    replies: dict[tuple[str, str], Any] = {}
    failures: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def work(thread: int) -> None:
        start.wait()
        for typename, id, data in requests(thread):
            try:
                replies[typename, id] = serve(data)
            except BaseException as error:
                failures.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return replies, failures


@pytest.fixture
def switching_often() -> Iterator[None]:
    """A thread switch between almost any two bytecodes, where a race would show."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


@pytest.mark.parametrize("driver", ["handle_sync", "handle_async"])
def test_a_fresh_handler_shared_by_many_threads_replies_as_one_thread_does(
    driver: str, switching_often: None
) -> None:
    with ThreadPoolExecutor(4) as executor:  # blocking=True functions' under handle_async
        alone = Batches()
        serve = drive(new_handler(alone, executor=executor), driver)
        expected = {
            (typename, id): serve(data)
            for thread in range(THREADS)
            for typename, id, data in requests(thread)
        }
        answered = [reply for (typename, _), reply in expected.items() if typename != "t/missing"]
        assert len({repr(reply) for reply in answered}) == len(answered)  # each its own
        for _ in range(ROUNDS):
            batches = Batches()
            replies, failures = at_once(drive(new_handler(batches, executor=executor), driver))
            assert [repr(failure.__cause__ or failure) for failure in failures] == []
            assert replies == expected
            assert batches.finished == alone.finished
