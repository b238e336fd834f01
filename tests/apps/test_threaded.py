"""A fresh server whose threads share one handler (gunicorn ``-k gthread``, waitress), over
HTTP on 127.0.0.1: many clients at once, on every kind of function, from the first request
on, get the replies one thread gets, and ``/metrics`` counts every batch once."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from statefun_core.testing.endpoint import free_port, request, running
from tests.core.threaded import STATES, THREADS, comparable, new_handler, requests

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.apps.threaded_app:app"


def gunicorn(port: int) -> list[str]:
    # one worker: every request on the one handler, its threads meeting on each first use
    return [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", "1",
            "-k", "gthread", "--threads", str(THREADS), APP]  # fmt: skip


def waitress(port: int) -> list[str]:
    return [sys.executable, "-m", "waitress", "--listen", f"127.0.0.1:{port}",
            "--threads", str(THREADS), APP]  # fmt: skip


@pytest.fixture(params=[gunicorn, waitress], ids=["gunicorn-gthread", "waitress"])
def port(request: pytest.FixtureRequest) -> Iterator[int]:
    server: Callable[[int], list[str]] = request.param
    pytest.importorskip(server.__name__)
    port = free_port()
    with running(server(port), port, cwd=ROOT):
        yield port


def post_at_once(port: int) -> dict[tuple[str, str], tuple[int, Any]]:
    """Each client thread's requests, the first ones at once: status and reply by function
    and id."""
    start = threading.Barrier(THREADS)

    def client(thread: int) -> dict[tuple[str, str], tuple[int, Any]]:
        start.wait()
        answers = {}
        for typename, id, data in requests(thread):
            status, _, body = request(port, "/", data)
            answers[typename, id] = (status, comparable(body) if status == 200 else body)
        return answers

    with ThreadPoolExecutor(THREADS) as pool:
        return {
            key: answer
            for answers in pool.map(client, range(THREADS))
            for key, answer in answers.items()
        }


def counted(port: int, metric: str) -> dict[tuple[str, ...], float]:
    """The samples of ``metric`` that ``/metrics`` shows, by their labels' values."""
    status, _, body = request(port, "/metrics", method="GET")
    assert status == 200
    return {
        tuple(sample.labels.values()): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
        if sample.name == metric and sample.value
    }


def test_a_fresh_servers_threads_reply_as_one_thread_does(port: int) -> None:
    handler = new_handler()
    expected = {
        (typename, id): (200, comparable(handler.handle_sync(data)))
        for thread in range(THREADS)
        for typename, id, data in requests(thread)
    }
    assert post_at_once(port) == expected
    outcomes = {
        (typename, "missing_state" if typename == "t/missing" else "ok"): float(THREADS)
        for typename in STATES
    }
    assert counted(port, "statefun_batches_total") == outcomes
    assert counted(port, "statefun_dead_letters_total") == {("t/dead",): float(THREADS)}
    assert request(port, "/health/ready", method="GET")[0] == 200
