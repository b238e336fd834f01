"""Real function servers on 127.0.0.1 (ephemeral ports) and real SQLite files."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Generator
from typing import Any, Callable, Optional, TypeVar

import pytest
from aiohttp import web
from statefun_local import LocalRuntime, parse_module

from statefun_core import CONTENT_TYPE, RequestReplyHandler, StatefulFunctions, error_response

T = TypeVar("T")


def pytest_configure(config: pytest.Config) -> None:
    if sys.version_info < (3, 11):
        # CPython 3.9 and 3.10's asyncio.sslproto marks a TLS transport closed when its
        # connection is lost only if its handshake had not completed: a server that resets an
        # established connection (test_tls.py: one refusing a client without a certificate)
        # leaves the client's to warn when collected. 3.11's new sslproto does not (bpo-44011).
        config.addinivalue_line(
            "filterwarnings",
            r"ignore:unclosed transport <asyncio\.sslproto\._SSLProtocolTransport"
            ":ResourceWarning:asyncio.sslproto",
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Generator[None, Any, None]:
    """A test that fails while the e2e kit's broker or Kinesis stand-in runs (test_kafka_edges.py,
    test_kinesis_edges.py: one per module) shows its log."""
    outcome = yield
    report = outcome.get_result()
    kit = sys.modules.get("statefun_e2e_kit")
    if report.failed and kit is not None:
        for process in kit.STARTED:
            if process.alive():
                title = f"log of {process.name}, pid {process.pid}"
                report.sections.append((title, process.tail()))


#: Decides what to do with request number n (1-based): None to answer normally, or a
#: response to send instead (e.g. a 500).
Fault = Callable[[int], Optional[web.StreamResponse]]


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


class FunctionServer:
    """An aiohttp server for ``functions`` at ``/statefun``; counts requests, injects faults."""

    def __init__(self, functions: StatefulFunctions, fault: Optional[Fault] = None) -> None:
        self.handler = RequestReplyHandler(functions)
        self.fault = fault
        self.requests = 0
        self.url = ""
        self._runner: Optional[web.AppRunner] = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        body = await request.read()
        if self.fault is not None:
            replaced = self.fault(self.requests)
            if replaced is not None:
                return replaced
        try:
            reply = await self.handler.handle_async(body)
        except Exception as error:
            status, text = error_response(error)
            return web.Response(status=status, text=text)
        return web.Response(body=reply, content_type=CONTENT_TYPE)

    async def __aenter__(self) -> FunctionServer:
        app = web.Application()
        app.router.add_post("/statefun", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/statefun"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


def kafka_ingress(value_type: str, target: str) -> str:
    """A module document: the Kafka ingress ``com.example/names`` routing topic ``names`` to
    ``target`` (with no broker, the runtime takes its records over HTTP, at ``/records``)."""
    return f"""
---
kind: io.statefun.kafka.v1/ingress
spec:
  id: com.example/names
  address: kafka:9092
  consumerGroupId: g
  topics:
    - {{topic: names, valueType: {value_type}, targets: [{target}]}}
"""


def module_yaml(
    url: str,
    functions: str = "com.example/*",
    call: str = "10s",
    max_batch: int = 1000,
    extra: str = "",
) -> str:
    return f"""
kind: io.statefun.endpoints.v2/http
spec:
  functions: {functions}
  urlPathTemplate: {url}
  maxNumBatchRequests: {max_batch}
  transport:
    call: {call}
---
kind: io.statefun.kafka.v1/egress
spec:
  id: com.example/out
  address: kafka:9092
{extra}
"""


@contextlib.asynccontextmanager
async def serving(
    functions: StatefulFunctions,
    db: Any,
    *,
    fault: Optional[Fault] = None,
    call: str = "10s",
    failure_pause: float = 0.05,
    max_batch: int = 1000,
    extra: str = "",
    **options: Any,
) -> AsyncIterator[tuple[FunctionServer, LocalRuntime]]:
    """A function server and a local runtime for it, on the database file ``db`` (``extra``:
    more module documents)."""
    async with FunctionServer(functions, fault) as server:
        text = module_yaml(server.url, call=call, max_batch=max_batch, extra=extra)
        # the module's Kafka address names no broker: records come over HTTP
        async with LocalRuntime(
            parse_module(text), db, failure_pause=failure_pause, offline=True, **options
        ) as runtime:
            yield server, runtime
