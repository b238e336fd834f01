"""statefun_tornado against a real Tornado HTTPServer on 127.0.0.1, with real protobuf bytes."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from decimal import Decimal
from importlib import metadata
from typing import Any, Mapping, Optional

import pytest
import statefun_tornado
from tornado import testing
from tornado.concurrent import Future
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.tcpclient import TCPClient
from tornado.testing import gen_test
from tornado.web import Application, HTTPError

from statefun_core import (
    Context,
    Message,
    RequestReplyHandler,
    StatefulFunctions,
    ValueSpec,
    make_plugin_manager,
    message_builder,
)
from statefun_core.engine import StateSpec
from statefun_core.errors import (
    MethodNotAllowedError,
    PluginError,
    RequestTooLargeError,
    UnknownTypeError,
)
from statefun_core.http import DEFAULT_MAX_REQUEST_BYTES
from statefun_core.plugins import Endpoint, EndpointResponse, HealthEndpoints, hookimpl
from statefun_core.testing import endpoint, wire
from statefun_core.testing.endpoint import (
    BLOCKING,
    FAILING,
    GREETER,
    INBOX,
    NEW,
    FailureRecorder,
    HeaderRecorder,
    PingEndpoints,
    greetings,
)
from statefun_core.testing.packaging import check_framework_imported_on_use, check_import_guard

LIMIT = 64 * 1024

# What setup raises for a state whose type only a disabled plugin resolves.
DISABLED_TYPE = (
    r"function 'bank/account', state 'balance': no StateFun type is known for decimal\.Decimal"
    r".*disabled plugins: slow-batches \(STATEFUN_DISABLED_PLUGINS\)"
)


def make_functions() -> StatefulFunctions:
    # The greeter yields between reading and writing its state: concurrent requests interleave.
    return endpoint.make_functions(interleave=True, blocking=True)


@contextmanager
def logged(name: str = "statefun_core") -> Iterator[list[logging.LogRecord]]:
    """The records logger ``name`` logs in the block, down to debug level (none is fine)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger(name)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


class StatefunHandlerTest(testing.AsyncHTTPTestCase):
    def get_app(self) -> Application:
        self.recorder = HeaderRecorder("X-Request-Id")
        self.failures = FailureRecorder()
        self.executor = ThreadPoolExecutor(2, thread_name_prefix="statefun-blocking")
        return statefun_tornado.make_app(
            make_functions(),
            max_body_size=LIMIT,
            executor=self.executor,
            plugins=make_plugin_manager([self.recorder, self.failures], load_entrypoints=False),
            xsrf_cookies=True,  # the endpoint must not need a cookie
        )

    def tearDown(self) -> None:
        super().tearDown()
        self.executor.shutdown()

    async def post(self, body: bytes, **kwargs: Any) -> HTTPResponse:
        return await self.http_client.fetch(
            self.get_url("/statefun"), method="POST", body=body, raise_error=False, **kwargs
        )

    @gen_test
    async def test_greeter_reply(self) -> None:
        response = await self.post(wire.to_function(GREETER, "Ann", ["Ann"], {"seen_count": 2}))
        assert response.code == 200
        assert response.headers.get_list("Content-Type") == ["application/octet-stream"]
        assert greetings(response.body) == (3, [(INBOX, "Ann", "Hello Ann for the 3th time!")])

    @gen_test
    async def test_state_discovery(self) -> None:
        response = await self.post(wire.to_function(GREETER, "Ann", ["Ann"]))
        assert response.code == 200
        assert response.headers.get_list("Content-Type") == ["application/octet-stream"]
        assert wire.missing_states(response.body) == [
            StateSpec("seen_count", "io.statefun.types/int")
        ]

    @gen_test
    async def test_batch(self) -> None:
        response = await self.post(wire.to_function(GREETER, "Bo", ["Bo", "Bo", "Bo"], NEW))
        assert response.code == 200
        seen, sent = greetings(response.body)
        assert seen == 3
        assert [text for _, _, text in sent] == [f"Hello Bo for the {n}th time!" for n in (1, 2, 3)]

    @gen_test
    async def test_garbage_body_is_400(self) -> None:
        response = await self.post(b"\xff\xff\xff not a protobuf")
        assert response.code == 400
        assert b"Traceback" not in response.body

    @gen_test
    async def test_unknown_function_is_404(self) -> None:
        response = await self.post(wire.to_function("com.example.fns/nobody", "x", ["x"], NEW))
        assert response.code == 404

    @gen_test
    async def test_get_is_405_with_allow(self) -> None:
        response = await self.http_client.fetch(self.get_url("/statefun"), raise_error=False)
        assert response.code == 405
        assert response.headers["Allow"] == "POST"

    @gen_test
    async def test_body_over_max_body_size_is_413(self) -> None:
        response = await self.post(b"\x00" * (LIMIT + 1))
        assert response.code == 413
        assert "Allow" not in response.headers  # the method was right
        response = await self.post(wire.to_function(GREETER, "Cy", ["Cy"], NEW))
        assert response.code == 200
        assert greetings(response.body)[0] == 1

    @gen_test
    async def test_a_body_of_exactly_max_body_size_is_served(self) -> None:
        name = "x" * (LIMIT - 100)
        name += "x" * (LIMIT - len(wire.to_function(GREETER, "Ann", [name], NEW)))
        body = wire.to_function(GREETER, "Ann", [name], NEW)
        assert len(body) == LIMIT
        response = await self.post(body)
        assert response.code == 200
        assert greetings(response.body)[0] == 1
        body = wire.to_function(GREETER, "Ann", [name + "x"], NEW)
        assert len(body) == LIMIT + 1
        response = await self.post(body)
        assert response.code == 413

    @gen_test
    async def test_a_chunked_body_is_refused_once_over_max_body_size(self) -> None:
        """No Content-Length to judge first: it is counted as it comes, served up to the
        limit, and refused with the endpoint's 413 (which the hooks hear of) once over it."""
        name = "x" * LIMIT
        name = name[: LIMIT - (len(wire.to_function(GREETER, "Ann", [name], NEW)) - LIMIT)]

        async def send(body: bytes) -> HTTPResponse:
            async def chunks(write: Any) -> None:
                for start in range(0, len(body), 8192):
                    await write(body[start : start + 8192])

            return await self.http_client.fetch(
                self.get_url("/statefun"),
                method="POST",
                body_producer=chunks,
                headers={"X-Request-Id": f"r-{len(body)}"},
                raise_error=False,
            )

        body = wire.to_function(GREETER, "Ann", [name], NEW)
        assert len(body) == LIMIT
        response = await send(body)
        assert response.code == 200
        assert greetings(response.body)[0] == 1
        response = await send(wire.to_function(GREETER, "Ann", [name + "x"], NEW))
        assert response.code == 413
        assert response.body.endswith(
            f": the request body is over the limit of {LIMIT} bytes (max_body_size)".encode()
        )
        assert self.failures.failures == [(RequestTooLargeError, 413, f"r-{LIMIT + 1}")]
        assert self.recorder.headers == [{"X-Request-Id": f"r-{LIMIT}"}]  # only the first ran
        response = await self.post(wire.to_function(GREETER, "Cy", ["Cy"], NEW))
        assert response.code == 200

    def test_the_application_settings_are_given(self) -> None:
        """make_app's keyword arguments are the Application's settings (xsrf_cookies here)."""
        assert self._app.settings["xsrf_cookies"] is True

    @gen_test
    async def test_a_method_tornado_does_not_route_is_a_405_that_reaches_the_hooks(self) -> None:
        response = await self.http_client.fetch(
            self.get_url("/statefun"),
            method="PROPFIND",
            headers={"X-Request-Id": "r-3"},
            allow_nonstandard_methods=True,
            raise_error=False,
        )
        assert response.code == 405
        assert response.headers["Allow"] == "POST"
        assert self.failures.failures == [(MethodNotAllowedError, 405, "r-3")]

    @gen_test
    async def test_framework_rejections_reach_the_hooks(self) -> None:
        response = await self.http_client.fetch(
            self.get_url("/statefun"), headers={"X-Request-Id": "r-1"}, raise_error=False
        )
        assert response.code == 405
        response = await self.post(b"\x00" * (LIMIT + 1), headers={"X-Request-Id": "r-2"})
        assert response.code == 413
        assert self.failures.failures == [
            (MethodNotAllowedError, 405, "r-1"),
            (RequestTooLargeError, 413, "r-2"),
        ]
        assert self.failures.batches == [None, None]  # rejected before a batch existed

    @gen_test
    async def test_a_client_gone_before_its_body_is_in_is_no_failure(self) -> None:
        """Logged at debug level, without a traceback, and no hook hears of it: nothing ran
        and no one is left to answer (as statefun-aiohttp)."""
        with self.assertLogs("statefun_core", logging.DEBUG) as logs:
            stream = await TCPClient().connect("127.0.0.1", self.get_http_port())
            head = b"POST /statefun HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n"
            await stream.write(head + b"\x00" * 10)
            await asyncio.sleep(0.1)  # the endpoint waits for the rest of the body
            stream.close()
            for _ in range(200):
                if logs.records:
                    break
                await asyncio.sleep(0.01)
        assert [(r.levelno, r.exc_info) for r in logs.records] == [(logging.DEBUG, None)]
        assert logs.records[0].getMessage().startswith("statefun request abandoned")
        assert self.failures.failures == []
        response = await self.post(wire.to_function(GREETER, "Di", ["Di"], NEW))
        assert response.code == 200

    @gen_test(timeout=30)
    async def test_a_client_gone_before_its_body_is_in_leaves_nothing_waiting(self) -> None:
        """The request's task, waiting for the body, ends when the client goes away."""

        def requests() -> list[asyncio.Task[Any]]:
            return [
                task
                for task in asyncio.all_tasks()
                if getattr(task.get_coro(), "__qualname__", "") == "RequestHandler._execute"
            ]

        with self.assertLogs("statefun_core", logging.DEBUG) as logs:
            stream = await TCPClient().connect("127.0.0.1", self.get_http_port())
            head = b"POST /statefun HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n"
            await stream.write(head + b"\x00" * 10)
            while not requests():  # its head is in: it waits for the rest of the body
                await asyncio.sleep(0.01)
            stream.close()
            while not logs.records:
                await asyncio.sleep(0.01)
        while requests():
            await asyncio.sleep(0.01)

    @gen_test
    async def test_a_wrong_method_is_named_in_the_rejection(self) -> None:
        with self.assertLogs("statefun_core", logging.INFO) as logs:
            response = await self.http_client.fetch(
                self.get_url("/statefun"), method="DELETE", raise_error=False
            )
        assert response.code == 405
        assert [r.getMessage() for r in logs.records] == [
            "statefun request rejected (405): DELETE is not allowed"
        ]

    @gen_test
    async def test_raising_function_is_500_without_traceback(self) -> None:
        with (
            self.assertLogs("statefun_core", logging.ERROR) as logs,
            logged("tornado.application") as tornado,
        ):
            response = await self.post(wire.to_function(FAILING, "x", ["x"]))
        assert response.code == 500
        # answered by the endpoint alone: Tornado saw no exception of the handler
        assert [r.getMessage() for r in tornado if r.levelno >= logging.ERROR] == []
        assert response.body == b"Internal Server Error: the function failed"
        assert b"on purpose" not in response.body
        assert "on purpose" in logs.output[0]
        response = await self.post(wire.to_function(GREETER, "Di", ["Di"], NEW))
        assert response.code == 200

    @gen_test
    async def test_the_access_line_of_a_failure_names_its_trace(self) -> None:
        """Tornado logs a 5xx's access line as an error: it carries the request's trace id,
        as the core's line of the failure does; the line of a success is Tornado's own."""
        trace = "0af7651916cd43dd8448eb211c80319c"
        traceparent = {"traceparent": f"00-{trace}-b7ad6b7169203331-01"}
        with logged("tornado.access") as access, logged():
            failed = await self.post(wire.to_function(FAILING, "x", ["x"]), headers=traceparent)
            untraced = await self.post(wire.to_function(FAILING, "x", ["x"]))
            ok = await self.post(wire.to_function(GREETER, "Di", ["Di"], NEW), headers=traceparent)
        assert (failed.code, untraced.code, ok.code) == (500, 500, 200)
        lines = [(r.levelno, r.getMessage()) for r in access]
        assert [level for level, _ in lines] == [logging.ERROR, logging.ERROR, logging.INFO]
        assert re.fullmatch(
            rf"500 POST /statefun \(127\.0\.0\.1\) trace={trace} \S+ms", lines[0][1]
        )
        assert re.fullmatch(r"500 POST /statefun \(127\.0\.0\.1\) \S+ms", lines[1][1])
        assert re.fullmatch(r"200 POST /statefun \(127\.0\.0\.1\) \S+ms", lines[2][1])

    @gen_test
    async def test_headers_reach_the_hooks(self) -> None:
        await self.post(
            wire.to_function(GREETER, "Ed", ["Ed"], NEW),
            headers={"X-Request-Id": "r-42"},
        )
        assert self.recorder.headers == [{"X-Request-Id": "r-42"}]

    @gen_test
    async def test_blocking_function_runs_on_the_given_executor(self) -> None:
        response = await self.post(wire.to_function(BLOCKING, "Fi", ["Fi"]))
        assert response.code == 200
        ((_, _, thread_name),) = greetings(response.body)[1]
        assert thread_name.startswith("statefun-blocking")

    @gen_test(timeout=60)
    async def test_concurrent_requests_do_not_cross_talk(self) -> None:
        client = AsyncHTTPClient(force_instance=True, max_clients=200)
        names = [f"user-{n}" for n in range(200)]

        async def greet(n: int, name: str) -> tuple[str, Any]:
            response = await client.fetch(
                self.get_url("/statefun"),
                method="POST",
                body=wire.to_function(GREETER, name, [name], {"seen_count": n}),
            )
            return name, greetings(response.body)

        try:
            replies = await asyncio.gather(*(greet(n, name) for n, name in enumerate(names)))
        finally:
            client.close()
        for n, (name, (seen, sent)) in enumerate(replies):
            assert seen == n + 1
            assert sent == [(INBOX, name, f"Hello {name} for the {n + 1}th time!")]


class PreparedHandler(statefun_tornado.StatefunHandler):
    """A subclass with its own ``prepare``, which says when it has run."""

    def initialize(self, handler: RequestReplyHandler, prepared: asyncio.Event) -> None:
        super().initialize(handler)
        self.prepared = prepared

    def prepare(self) -> None:
        super().prepare()
        self.prepared.set()


class BodyAfterPrepareTest(testing.AsyncHTTPTestCase):
    """A request within the limit has its body read without waiting for ``prepare``, and
    ``prepare`` may run before the body is in: the handler still gets it whole."""

    def get_app(self) -> Application:
        self.prepared = asyncio.Event()
        handler = RequestReplyHandler(
            make_functions(), plugins=make_plugin_manager(load_entrypoints=False)
        )
        options = {"handler": handler, "prepared": self.prepared}
        return Application([("/statefun", PreparedHandler, options)])

    @gen_test
    async def test_a_body_still_coming_when_prepare_runs_is_read_whole(self) -> None:
        body = wire.to_function(GREETER, "Ann", ["Ann"], NEW)
        stream = await TCPClient().connect("127.0.0.1", self.get_http_port())
        try:
            head = b"POST /statefun HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n"
            await stream.write(head % len(body) + body[:10])
            await self.prepared.wait()
            await stream.write(body[10:])
            reply_head = await stream.read_until(b"\r\n\r\n")
            assert reply_head.startswith(b"HTTP/1.1 200 "), reply_head
            length = re.search(rb"Content-Length: (\d+)", reply_head)
            assert length is not None, reply_head
            reply = await stream.read_bytes(int(length.group(1)))
        finally:
            stream.close()
        assert greetings(reply) == (1, [(INBOX, "Ann", "Hello Ann for the 1th time!")])


class EventsHandler(statefun_tornado.StatefunHandler):
    """Keeps in ``events`` when ``prepare`` ran and when body bytes came."""

    def initialize(self, handler: RequestReplyHandler, events: list[str]) -> None:
        super().initialize(handler, max_body_size=LIMIT)
        self.events = events

    def prepare(self) -> None:
        self.events.append("prepare")
        super().prepare()

    def data_received(self, chunk: bytes) -> None:
        self.events.append("body")
        super().data_received(chunk)


class RefusedBodyTest(testing.AsyncHTTPTestCase):
    """A request refused on its head (a wrong method, a declared length over the limit) is
    answered without its body read first: no byte of it comes before ``prepare`` runs."""

    def get_app(self) -> Application:
        self.events: list[str] = []
        handler = RequestReplyHandler(
            make_functions(), plugins=make_plugin_manager(load_entrypoints=False)
        )
        return Application(
            [("/statefun", EventsHandler, {"handler": handler, "events": self.events})]
        )

    @gen_test(timeout=30)
    async def test_the_body_of_a_refused_request_is_not_read_first(self) -> None:
        for method, length, status in (("PUT", 100, b"405"), ("POST", LIMIT + 1, b"413")):
            self.events.clear()
            stream = await TCPClient().connect("127.0.0.1", self.get_http_port())
            try:
                head = f"{method} /statefun HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                head += f"Content-Length: {length}\r\n\r\n"
                await stream.write(head.encode() + b"\x00" * 100)
                reply = await stream.read_until(b"\r\n\r\n")
            finally:
                stream.close()
            assert reply.startswith(b"HTTP/1.1 " + status), reply
            assert self.events[:1] == ["prepare"], (method, self.events)


class BodyWaitingHandler(statefun_tornado.StatefunHandler):
    """A subclass whose ``prepare`` waits for the whole body (as one that checks a signature
    of it would)."""

    def initialize(self, handler: RequestReplyHandler) -> None:
        super().initialize(handler)
        self.received = 0
        self.body_in = asyncio.Event()

    def data_received(self, chunk: bytes) -> None:
        super().data_received(chunk)
        self.received += len(chunk)
        if self.received == int(self.request.headers["Content-Length"]):
            self.body_in.set()

    async def prepare(self) -> None:
        super().prepare()
        await self.body_in.wait()


class PrepareDoesNotHoldBackTheBodyTest(testing.AsyncHTTPTestCase):
    """The body of a request the header checks let through is read without waiting for
    ``prepare``: a ``prepare`` that waits for it gets it (it would wait forever otherwise)."""

    def get_app(self) -> Application:
        handler = RequestReplyHandler(
            make_functions(), plugins=make_plugin_manager(load_entrypoints=False)
        )
        return Application([("/statefun", BodyWaitingHandler, {"handler": handler})])

    @gen_test(timeout=30)
    async def test_a_prepare_waiting_for_the_body_gets_it(self) -> None:
        body = wire.to_function(GREETER, "Ann", ["Ann" * 10_000], NEW)
        response = await self.http_client.fetch(
            self.get_url("/statefun"), method="POST", body=body, raise_error=False
        )
        assert response.code == 200
        assert greetings(response.body)[0] == 1


class ForbiddingHandler(statefun_tornado.StatefunHandler):
    """A subclass whose ``prepare`` refuses a request with an HTTPError of its own."""

    def prepare(self) -> None:
        if "X-Forbid" in self.request.headers:
            raise HTTPError(403)
        super().prepare()


class UncheckedEndpoint(Endpoint):
    """Answers what its handle returns, unchecked (``respond`` refuses a header Tornado cannot
    write): a way to make Tornado itself fail."""

    def respond(self, headers: Mapping[str, str]) -> EndpointResponse:
        return self.handle(headers)


class OwnErrorsTest(testing.AsyncHTTPTestCase):
    """An error other than a 405 is answered by Tornado's own ``write_error`` (here with the
    traceback ``serve_traceback`` asks for), and is no rejection the hooks hear of."""

    def get_app(self) -> Application:
        self.failures = FailureRecorder()
        handler = RequestReplyHandler(
            make_functions(), plugins=make_plugin_manager([self.failures], load_entrypoints=False)
        )
        broken = UncheckedEndpoint(
            "GET", "/broken", lambda headers: EndpointResponse(200, {"X-Bad": "a\r\nb"}, b"")
        )
        return Application(
            [
                ("/statefun", ForbiddingHandler, {"handler": handler}),
                ("/broken", statefun_tornado.EndpointHandler, {"endpoints": [broken]}),
            ],
            serve_traceback=True,
        )

    def test_a_subclass_http_error(self) -> None:
        body = wire.to_function(GREETER, "Ann", ["Ann"], NEW)
        with self.assertLogs("tornado.access", logging.WARNING):
            response = self.fetch("/statefun", method="POST", body=body, headers={"X-Forbid": "1"})
        assert response.code == 403
        assert b"HTTP 403: Forbidden" in response.body  # the traceback of the HTTPError
        assert "Allow" not in response.headers
        assert self.failures.failures == []
        response = self.fetch("/statefun", method="POST", body=body)
        assert response.code == 200

    def test_an_endpoint_that_fails_tornado_is_a_500(self) -> None:
        with self.assertLogs("tornado.application", logging.ERROR):
            response = self.fetch("/broken")
        assert response.code == 500
        assert b"Unsafe header value" in response.body  # the traceback of the ValueError
        assert "Allow" not in response.headers


class RefusedByPrepareTest(testing.AsyncHTTPTestCase):
    """A chunked body over the limit that a subclass's ``prepare`` refuses first (its own
    HTTPError) leaves no connection behind: the server closes it once it has answered."""

    def get_app(self) -> Application:
        handler = RequestReplyHandler(
            make_functions(), plugins=make_plugin_manager(load_entrypoints=False)
        )
        return Application(
            [("/statefun", ForbiddingHandler, {"handler": handler})], statefun_max_body_size=1000
        )

    @gen_test(timeout=30)
    async def test_the_connection_ends_with_the_answer(self) -> None:
        body = wire.to_function(GREETER, "Ann", ["x" * 3000], NEW)
        head = b"POST /statefun HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forbid: 1\r\n"
        head += b"Transfer-Encoding: chunked\r\n\r\n"
        stream = await TCPClient().connect("127.0.0.1", self.get_http_port())
        try:
            # in one piece: the body is over the limit before prepare has run
            await stream.write(head + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
            reply = await stream.read_until_close()
        finally:
            stream.close()
        assert reply.startswith(b"HTTP/1.1 403 "), reply[:100]
        # each connection ends at once; one left waiting to read on would never end
        closing = asyncio.ensure_future(self.http_server.close_all_connections())
        await asyncio.wait([closing], timeout=20)
        assert closing.done(), "a connection is left waiting for the handler"


class AwaitingPrepareHandler(statefun_tornado.StatefunHandler):
    """A subclass whose ``prepare`` awaits, once the checks have run, till the body is over
    the limit (as a lookup of its own might take that long)."""

    def initialize(  # type: ignore[override]
        self, handler: RequestReplyHandler, prepared: asyncio.Event
    ) -> None:
        super().initialize(handler, max_body_size=1000)
        self.prepared = prepared
        self.received = 0
        self.over = asyncio.Event()

    async def prepare(self) -> None:
        super().prepare()
        self.prepared.set()
        await self.over.wait()

    def data_received(self, chunk: bytes) -> Optional[Future[None]]:
        self.received += len(chunk)
        if self.received > 1000:
            self.over.set()
        return super().data_received(chunk)


class BodyOverTheLimitDuringPrepareTest(testing.AsyncHTTPTestCase):
    """A chunked body that goes over the limit while a subclass's ``prepare`` awaits is
    answered 413 once ``prepare`` is done."""

    def get_app(self) -> Application:
        self.prepared = asyncio.Event()
        handler = RequestReplyHandler(
            make_functions(), plugins=make_plugin_manager(load_entrypoints=False)
        )
        options = {"handler": handler, "prepared": self.prepared}
        return Application([("/statefun", AwaitingPrepareHandler, options)])

    @gen_test(timeout=30)
    async def test_it_is_a_413(self) -> None:
        body = wire.to_function(GREETER, "Ann", ["x" * 3000], NEW)
        head = b"POST /statefun HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        stream = await TCPClient().connect("127.0.0.1", self.get_http_port())
        try:
            await stream.write(head)
            await self.prepared.wait()  # the body comes once prepare awaits
            await stream.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
            reply = await stream.read_until(b"\r\n\r\n")
        finally:
            stream.close()
        assert reply.startswith(b"HTTP/1.1 413 "), reply


class ServerLimitTest(testing.AsyncHTTPTestCase):
    """An HTTPServer's own max_body_size lower than the endpoint's holds, and the 413 names it
    (the endpoint counts a body itself, past the connection's limit)."""

    def get_app(self) -> Application:
        self.failures = FailureRecorder()
        plugins = make_plugin_manager([self.failures], load_entrypoints=False)
        return statefun_tornado.make_app(make_functions(), plugins=plugins)  # 32 MiB

    setting = "HTTPServer max_body_size"

    def get_httpserver_options(self) -> dict[str, Any]:
        return {"max_body_size": LIMIT}

    @gen_test(timeout=30)
    async def test_the_servers_lower_limit_holds(self) -> None:
        body = wire.to_function(GREETER, "Ann", ["x" * LIMIT], NEW)
        for chunked in (False, True):
            status, _, text = await asyncio.to_thread(
                endpoint.request, self.get_http_port(), "/statefun", body, chunked=chunked
            )
            assert status == 413, (chunked, status, text)
            assert f"over the limit of {LIMIT} bytes ({self.setting})".encode() in text
        assert [failure[:2] for failure in self.failures.failures] == [
            (RequestTooLargeError, 413)
        ] * 2
        fits = wire.to_function(GREETER, "Ann", ["Ann"], NEW)
        status, _, _ = await asyncio.to_thread(
            endpoint.request, self.get_http_port(), "/statefun", fits
        )
        assert status == 200


class ServerBufferLimitTest(ServerLimitTest):
    """Without max_body_size, Tornado's limit is the HTTPServer's max_buffer_size."""

    setting = "HTTPServer max_buffer_size"

    def get_httpserver_options(self) -> dict[str, Any]:
        return {"max_buffer_size": LIMIT}


class SlowFunctionTest(testing.AsyncHTTPTestCase):
    """A client that goes away once its body is in, while its function runs, did not abandon
    the request before the body: the function runs to its end and nothing says otherwise."""

    def get_app(self) -> Application:
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.finished = asyncio.Event()
        functions = StatefulFunctions()

        @functions.bind("com.example.fns/slow")
        async def slow(context: Any, message: Any) -> None:
            self.started.set()
            await self.release.wait()
            self.finished.set()

        self.handler = RequestReplyHandler(
            functions, plugins=make_plugin_manager(load_entrypoints=False)
        )
        self.closed = asyncio.Event()
        options = {"handler": self.handler, "closed": self.closed}
        return Application([("/statefun", ClosedHandler, options)])

    @gen_test(timeout=30)
    async def test_a_client_gone_while_its_function_runs_is_not_an_abandoned_request(self) -> None:
        body = wire.to_function("com.example.fns/slow", "x", ["x"])
        head = b"POST /statefun HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n"
        with logged() as records:
            stream = await TCPClient().connect("127.0.0.1", self.get_http_port())
            await stream.write(head % len(body) + body)
            await self.started.wait()
            stream.close()
            await self.closed.wait()  # the handler heard of the closed connection
            self.release.set()
            await self.finished.wait()
        assert [r.getMessage() for r in records if "abandoned" in r.getMessage()] == []


class ClosedHandler(statefun_tornado.StatefunHandler):
    """Says when it has heard that the connection closed."""

    def initialize(self, handler: RequestReplyHandler, closed: asyncio.Event) -> None:
        super().initialize(handler)
        self.closed = closed

    def on_connection_close(self) -> None:
        super().on_connection_close()
        self.closed.set()


class RoutesTest(testing.AsyncHTTPTestCase):
    """``make_routes`` in an application's own table, with a ready handler."""

    def get_app(self) -> Application:
        handler = RequestReplyHandler(
            make_functions(), plugins=make_plugin_manager(load_entrypoints=False)
        )
        routes = statefun_tornado.make_routes(handler, "/fns", endpoints=False)
        other = Endpoint("GET", "/other", lambda headers: EndpointResponse(200, {}, b"other"))
        self.answered: list[str] = []

        def accepted(headers: Any) -> EndpointResponse:
            self.answered.append(headers.get("X-Request-Id"))
            return EndpointResponse(202, {"X-Own": "1"}, b"queued")

        queue = Endpoint("GET", "/queue", accepted)
        return Application(
            [
                *routes,
                (r"/other", statefun_tornado.EndpointHandler, {"endpoints": [other]}),
                (r"/queue", statefun_tornado.EndpointHandler, {"endpoints": [queue]}),
            ]
        )

    def test_a_hand_written_endpoint_rule(self) -> None:
        """The endpoint's own status and headers; other methods never reach it."""
        response = self.fetch("/queue", headers={"X-Request-Id": "get"})
        assert (response.code, response.headers["X-Own"], response.body) == (202, "1", b"queued")
        response = self.fetch("/queue", method="POST", body=b"", headers={"X-Request-Id": "post"})
        assert (response.code, response.headers["Allow"]) == (405, "GET, HEAD")
        assert self.answered == ["get"]

    def test_served_at_the_given_path(self) -> None:
        response = self.fetch(
            "/fns",
            method="POST",
            body=wire.to_function(GREETER, "Ann", ["Ann"], NEW),
        )
        assert response.code == 200
        assert greetings(response.body)[0] == 1
        assert self.fetch("/statefun", method="POST", body=b"").code == 404
        slashed = self.fetch(
            "/fns/", method="POST", body=wire.to_function(GREETER, "Ann", ["Ann"], NEW)
        )
        assert slashed.code == 200 and greetings(slashed.body)[0] == 1

    def test_a_path_without_its_leading_slash(self) -> None:
        """Tornado matches a rule against the path with its slash: "statefun/" is /statefun/."""
        handler = RequestReplyHandler(
            make_functions(), plugins=make_plugin_manager(load_entrypoints=False)
        )
        app = statefun_tornado.make_app(handler, "bare/", endpoints=False)
        self._app.add_handlers(r".*", app.wildcard_router.rules)
        for path in ("/bare", "/bare/"):
            response = self.fetch(
                path, method="POST", body=wire.to_function(GREETER, "Ann", ["Ann"], NEW)
            )
            assert response.code == 200 and greetings(response.body)[0] == 1

    def test_hand_written_rule(self) -> None:
        handler = RequestReplyHandler(
            make_functions(), plugins=make_plugin_manager(load_entrypoints=False)
        )
        rule = (
            r"/own",
            statefun_tornado.StatefunHandler,
            {"handler": handler, "max_body_size": 10},
        )
        self._app.add_handlers(r".*", [rule])
        response = self.fetch(
            "/own",
            method="POST",
            body=wire.to_function(GREETER, "Ann", ["Ann"], NEW),
        )
        assert response.code == 413

    def test_reverse_url(self) -> None:
        assert self._app.reverse_url("statefun") == "/fns"


class DefaultRoutesTest(testing.AsyncHTTPTestCase):
    """``make_routes`` with its defaults: ``/statefun``, and a named rule for each endpoint
    of the plugins."""

    def get_app(self) -> Application:
        handler = RequestReplyHandler(
            make_functions(),
            plugins=make_plugin_manager([HealthEndpoints()], load_entrypoints=False),
        )
        return Application(statefun_tornado.make_routes(handler))

    def test_the_default_path_and_the_endpoints(self) -> None:
        body = wire.to_function(GREETER, "Ann", ["Ann"], NEW)
        assert self.fetch("/statefun", method="POST", body=body).code == 200
        assert self.fetch("/statefun/", method="POST", body=body).code == 200  # as aiohttp's
        assert self._app.reverse_url("statefun") == "/statefun"
        for path in ("/health/live", "/health/ready"):
            assert self.fetch(path).code == 200, path
            assert self._app.reverse_url(f"statefun-endpoint-{path}") == path


class EndpointsAtOnePathTest(testing.AsyncHTTPTestCase):
    """Endpoints of several methods at one path: one rule, each method its own endpoint."""

    def get_app(self) -> Application:
        plugins = make_plugin_manager([PingEndpoints()], load_entrypoints=False)
        return statefun_tornado.make_app(make_functions(), plugins=plugins)

    def test_each_method_finds_its_endpoint(self) -> None:
        assert (self.fetch("/ping").code, self.fetch("/ping").body) == (200, b"got")
        posted = self.fetch("/ping", method="POST", body=b"")
        assert (posted.code, posted.body) == (202, b"posted")
        assert self.fetch("/ping", method="HEAD").code == 200
        refused = self.fetch("/ping", method="PUT", body=b"")
        assert refused.code == 405
        assert refused.headers["Allow"] == "GET, HEAD, POST"
        assert self._app.reverse_url("statefun-endpoint-/ping") == "/ping"

    def test_head_finds_only_a_get(self) -> None:
        response = self.fetch("/pong", method="HEAD")
        assert response.code == 405
        assert response.headers["Allow"] == "POST"


class EndpointsUnderXsrfTest(testing.AsyncHTTPTestCase):
    """With xsrf_cookies=True a method no endpoint answers still gets its 405 with Allow (not
    Tornado's XSRF 403 page: there is nothing there to protect); an endpoint that answers an
    unsafe method keeps Tornado's XSRF check."""

    def get_app(self) -> Application:
        plugins = make_plugin_manager([PingEndpoints()], load_entrypoints=False)
        return statefun_tornado.make_app(make_functions(), plugins=plugins, xsrf_cookies=True)

    def test_a_method_without_an_endpoint_is_405(self) -> None:
        for method in ("PUT", "DELETE", "PATCH"):
            refused = self.fetch("/ping", method=method, body=None if method == "DELETE" else b"")
            assert refused.code == 405, method
            assert refused.headers["Allow"] == "GET, HEAD, POST"
            assert refused.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert self.fetch("/ping").code == 200

    def test_an_unsafe_endpoint_keeps_the_xsrf_check(self) -> None:
        assert self.fetch("/ping", method="POST", body=b"").code == 403


class GroupsInThePatternTest(testing.AsyncHTTPTestCase):
    """A rule whose pattern has groups (one rule for several paths): the endpoint serves."""

    def get_app(self) -> Application:
        handler = RequestReplyHandler(make_functions())
        return Application(
            [
                (r"/statefun/(.*)", statefun_tornado.StatefunHandler, {"handler": handler}),
                (r"/named/(?P<rest>.*)", statefun_tornado.StatefunHandler, {"handler": handler}),
            ]
        )

    def test_the_groups_are_passed_over(self) -> None:
        body = wire.to_function(GREETER, "Ann", ["Ann"], NEW)
        for path in ("/statefun/greeter", "/named/greeter"):
            response = self.fetch(path, method="POST", body=body)
            assert response.code == 200, path
            assert greetings(response.body)[0] == 1


class MakeAppWithoutEndpointsTest(testing.AsyncHTTPTestCase):
    def get_app(self) -> Application:
        return statefun_tornado.make_app(
            make_functions(),
            plugins=make_plugin_manager([HealthEndpoints()], load_entrypoints=False),
            endpoints=False,
        )

    def test_the_endpoints_are_left_out(self) -> None:
        assert self.fetch("/health/live").code == 404
        body = wire.to_function(GREETER, "Ann", ["Ann"], NEW)
        assert self.fetch("/statefun", method="POST", body=body).code == 200


class SettingsTest(testing.AsyncHTTPTestCase):
    """A rule without options takes them from the application's settings; its own win."""

    def get_app(self) -> Application:
        handler = RequestReplyHandler(
            make_functions(), plugins=make_plugin_manager(load_entrypoints=False)
        )
        return Application(
            [
                (r"/statefun", statefun_tornado.StatefunHandler),
                (r"/own", statefun_tornado.StatefunHandler, {"max_body_size": 2 * LIMIT}),
            ],
            statefun_handler=handler,
            statefun_max_body_size=LIMIT,
        )

    def test_the_handler_from_the_settings(self) -> None:
        body = wire.to_function(GREETER, "Ann", ["Ann"], NEW)
        response = self.fetch("/statefun", method="POST", body=body)
        assert response.code == 200
        assert greetings(response.body)[0] == 1

    def test_the_body_limit_from_the_settings(self) -> None:
        body = wire.to_function(GREETER, "Ann", ["x" * LIMIT], NEW)
        assert self.fetch("/statefun", method="POST", body=body).code == 413
        assert self.fetch("/own", method="POST", body=body).code == 200


class NoneSettingTest(testing.AsyncHTTPTestCase):
    """statefun_max_body_size=None (a setting read from an unset option) is the default limit,
    as max_body_size=None is for Tornado's HTTPServer: not a TypeError on every request."""

    def get_app(self) -> Application:
        handler = RequestReplyHandler(
            make_functions(), plugins=make_plugin_manager(load_entrypoints=False)
        )
        return Application(
            [(r"/statefun", statefun_tornado.StatefunHandler)],
            statefun_handler=handler,
            statefun_max_body_size=None,
        )

    @gen_test
    async def test_the_default_limit(self) -> None:
        response = await self.http_client.fetch(
            self.get_url("/statefun"),
            method="POST",
            body=wire.to_function(GREETER, "Ann", ["Ann"], NEW),
            raise_error=False,
        )
        assert response.code == 200
        stream = await TCPClient().connect("127.0.0.1", self.get_http_port())
        length = DEFAULT_MAX_REQUEST_BYTES + 1  # declared only: refused before the body
        await stream.write(
            b"POST /statefun HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n" % length
        )
        head = await stream.read_until(b"\r\n")
        stream.close()
        assert head.startswith(b"HTTP/1.1 413 "), head


class RoutesTakeTheSettingTest(testing.AsyncHTTPTestCase):
    """make_routes and make_app given no max_body_size leave the limit to the application's
    statefun_max_body_size setting; a max_body_size given wins over it."""

    def get_app(self) -> Application:
        plugins = make_plugin_manager(load_entrypoints=False)
        return Application(
            [
                *statefun_tornado.make_routes(make_functions(), plugins=plugins),
                *statefun_tornado.make_routes(
                    make_functions(), "/own", max_body_size=2 * LIMIT, plugins=plugins
                ),
            ],
            statefun_max_body_size=LIMIT,
        )

    def test_the_setting_is_the_limit(self) -> None:
        body = wire.to_function(GREETER, "Ann", ["x" * LIMIT], NEW)
        response = self.fetch("/statefun", method="POST", body=body)
        assert response.code == 413
        assert b"over the limit of 65536 bytes (max_body_size)" in response.body
        assert self.fetch("/own", method="POST", body=body).code == 200


class MakeAppSettingTest(testing.AsyncHTTPTestCase):
    def get_app(self) -> Application:
        return statefun_tornado.make_app(
            make_functions(),
            plugins=make_plugin_manager(load_entrypoints=False),
            statefun_max_body_size=LIMIT,
        )

    def test_the_setting_is_the_limit(self) -> None:
        body = wire.to_function(GREETER, "Ann", ["x" * LIMIT], NEW)
        assert self.fetch("/statefun", method="POST", body=body).code == 413
        body = wire.to_function(GREETER, "Ann", ["Ann"], NEW)
        assert self.fetch("/statefun", method="POST", body=body).code == 200


#: What the test subclass's prepare puts in the request's context for the functions (README).
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")


def context_functions() -> StatefulFunctions:
    """Functions that send back what they see of REQUEST_ID, and the thread they ran on."""
    functions = StatefulFunctions()

    async def seen(context: Context, message: Message) -> None:
        await asyncio.sleep(0)
        reply = f"{REQUEST_ID.get()} {threading.current_thread().name}"
        context.send(message_builder(INBOX, context.address.id, str_value=reply))

    def seen_sync(context: Context, message: Message) -> None:
        reply = f"{REQUEST_ID.get()} {threading.current_thread().name}"
        context.send(message_builder(INBOX, context.address.id, str_value=reply))

    functions.register("ctx/async", seen)
    functions.register("ctx/sync", seen_sync)
    functions.register("ctx/blocking", seen_sync, blocking=True)
    return functions


class RequestIdHandler(statefun_tornado.StatefunHandler):
    def prepare(self) -> None:
        super().prepare()
        REQUEST_ID.set(self.request.headers.get("X-Request-Id", "none"))


class PrepareContextTest(testing.AsyncHTTPTestCase):
    """README: a context variable a subclass's prepare sets is seen by every function (a
    blocking one in the executor too), and by no other request."""

    def get_app(self) -> Application:
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="statefun-blocking")
        handler = RequestReplyHandler(
            context_functions(),
            executor=self.executor,
            plugins=make_plugin_manager(load_entrypoints=False),
        )
        return Application([(r"/statefun", RequestIdHandler, {"handler": handler})])

    def tearDown(self) -> None:
        super().tearDown()
        self.executor.shutdown()

    def seen(self, typename: str, request_id: str) -> str:
        headers = {"X-Request-Id": request_id} if request_id else {}
        body = wire.to_function(typename, "Ann", ["Ann"])
        response = self.fetch("/statefun", method="POST", body=body, headers=headers)
        assert response.code == 200
        (sent,) = greetings(response.body)[1]
        return sent[2] or ""

    def test_functions_see_the_context_prepare_sets(self) -> None:
        loop_thread = threading.current_thread().name
        for typename, thread in (
            ("ctx/async", loop_thread),
            ("ctx/sync", loop_thread),
            ("ctx/blocking", "statefun-blocking_0"),
        ):
            assert self.seen(typename, "r-1") == f"r-1 {thread}"
            assert self.seen(typename, "") == f"none {thread}"


#: What the test subclass below sets in prepare and resets in on_finish, as an HTTP server
#: instrumentation does with the request's span (opentelemetry-instrumentation-tornado).
REQUEST_SCOPE: contextvars.ContextVar[str] = contextvars.ContextVar("request_scope", default="")


class ScopedHandler(statefun_tornado.StatefunHandler):
    """Sets REQUEST_SCOPE in ``prepare``, resets it with the token in ``on_finish``."""

    def prepare(self) -> None:
        self.scope_token = REQUEST_SCOPE.set(self.request.path)
        super().prepare()

    def on_finish(self) -> None:
        REQUEST_SCOPE.reset(self.scope_token)  # ValueError in another context than prepare's
        super().on_finish()


class BodyCountingHandler(ScopedHandler):
    """A subclass whose ``data_received`` returns nothing (as Tornado's own does)."""

    def data_received(self, chunk: bytes) -> None:
        super().data_received(chunk)


class ScopeRecorder:
    """A plugin: keeps the REQUEST_SCOPE each failed request's hook saw, with the error."""

    def __init__(self) -> None:
        self.failures: list[tuple[type[BaseException], str]] = []

    @hookimpl
    def statefun_request_failed(self, error: BaseException) -> None:
        self.failures.append((type(error), REQUEST_SCOPE.get()))


class RequestScopeTest(testing.AsyncHTTPTestCase):
    """A request is answered where ``prepare`` ran, a chunked body over the limit too: what
    ``prepare`` sets in the context, the hooks see and ``on_finish`` can reset, and no later
    request sees it."""

    def get_app(self) -> Application:
        self.recorder = ScopeRecorder()
        handler = RequestReplyHandler(
            make_functions(), plugins=make_plugin_manager([self.recorder], load_entrypoints=False)
        )
        options = {"handler": handler, "max_body_size": LIMIT}
        return Application(
            [("/statefun", ScopedHandler, options), ("/counted", BodyCountingHandler, options)]
        )

    @gen_test(timeout=30)
    async def test_a_chunked_body_over_the_limit_is_answered_in_the_requests_context(
        self,
    ) -> None:
        body = wire.to_function(GREETER, "Ann", ["x" * LIMIT], NEW)
        for path in ("/statefun", "/counted"):
            with logged("tornado.application") as records:
                status, headers, text = await asyncio.to_thread(
                    endpoint.request, self.get_http_port(), path, body, chunked=True
                )
                assert status == 413, text
                assert headers["Connection"] == "close"
                response = await self.http_client.fetch(
                    self.get_url(path),
                    method="POST",
                    body=wire.to_function(GREETER, "Bob", ["Bob"], NEW),
                )
            assert response.code == 200
            errors = [record.getMessage() for record in records if record.levelno >= logging.ERROR]
            assert not errors, (path, errors)
            assert self.recorder.failures == [(RequestTooLargeError, path)]
            assert REQUEST_SCOPE.get() == ""
            self.recorder.failures.clear()


class NoHandlerTest(testing.AsyncHTTPTestCase):
    """Neither the rule nor the settings give a handler: each request is a logged 500, not a
    connection dropped unanswered."""

    def get_app(self) -> Application:
        return Application([(r"/statefun", statefun_tornado.StatefunHandler)])

    def test_each_request_is_a_logged_500(self) -> None:
        greeting = wire.to_function(GREETER, "Ann", ["Ann"], NEW)
        for method, body in (("POST", greeting), ("GET", None), ("PROPFIND", None)):
            with self.assertLogs("statefun_core", logging.ERROR) as logs:
                response = self.fetch(
                    "/statefun", method=method, body=body, allow_nonstandard_methods=True
                )
            assert response.code == 500, method
            assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
            assert response.body == b"Internal Server Error"  # no function failed
            assert "Allow" not in response.headers, method
            assert "'statefun_handler' setting" in logs.output[0]


class FunctionsForAHandlerTest(testing.AsyncHTTPTestCase):
    """The rule or the setting gives the StatefulFunctions where a RequestReplyHandler goes
    (make_routes takes either): each request is a logged 500 that says what to give, not an
    AttributeError (and, for a wrong method, Tornado's HTML page)."""

    def get_app(self) -> Application:
        return Application(
            [
                (r"/statefun", statefun_tornado.StatefunHandler, {"handler": make_functions()}),
                (r"/settings", statefun_tornado.StatefunHandler),
            ],
            statefun_handler=make_functions(),
        )

    def test_each_request_is_a_logged_500_that_says_what_to_give(self) -> None:
        greeting = wire.to_function(GREETER, "Ann", ["Ann"], NEW)
        for path in ("/statefun", "/settings"):
            for method, body in (("POST", greeting), ("GET", None), ("PROPFIND", None)):
                with self.assertLogs("statefun_core", logging.ERROR) as logs:
                    response = self.fetch(
                        path, method=method, body=body, allow_nonstandard_methods=True
                    )
                assert response.code == 500, (path, method)
                assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
                assert response.body == b"Internal Server Error"
                assert "not a RequestReplyHandler" in logs.output[0], logs.output
                assert "RequestReplyHandler(functions)" in logs.output[0]


class MetricsTest(testing.AsyncHTTPTestCase):
    def get_app(self) -> Application:
        pytest.importorskip("statefun_prometheus")
        return statefun_tornado.make_app(make_functions())  # installed plugins, prometheus too

    def test_metrics_after_a_request(self) -> None:
        self.fetch(
            "/statefun",
            method="POST",
            body=wire.to_function(GREETER, "Ann", ["Ann"], NEW),
        )
        response = self.fetch("/metrics")
        assert response.code == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        assert b'statefun_batches_total{function_type="com.example.fns/greeter"' in response.body


def test_make_routes_rejects_executor_with_a_ready_handler() -> None:
    handler = RequestReplyHandler(make_functions(), plugins=make_plugin_manager())
    with pytest.raises(ValueError, match="RequestReplyHandler"):
        statefun_tornado.make_routes(handler, executor=ThreadPoolExecutor(1))


def test_the_framework_is_imported_on_use_not_by_the_plugin_host() -> None:
    check_framework_imported_on_use(
        "statefun_tornado", entry_point="tornado", framework="tornado", export="make_app"
    )


def test_entry_point_names_the_integration() -> None:
    plugin = make_plugin_manager().get_plugin("tornado")  # loaded from its entry point
    assert plugin.FRAMEWORK == "tornado"
    # the distribution that registers it
    entry_points = metadata.distribution(plugin.DISTRIBUTION).entry_points
    assert [ep.name for ep in entry_points if ep.group == "statefun"] == ["tornado"]


def test_import_without_tornado_says_what_to_install() -> None:
    check_import_guard("statefun_tornado", missing="tornado", distribution="statefun-tornado")


def test_a_state_of_a_disabled_type_plugin_fails_at_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example plugin's Decimal type: resolved when it is on, refused at setup when off."""
    pytest.importorskip("statefun_slow_batches")

    def decimal_functions() -> StatefulFunctions:
        functions = StatefulFunctions()
        functions.register("bank/account", lambda c, m: None, [ValueSpec("balance", type=Decimal)])
        return functions

    statefun_tornado.make_routes(decimal_functions())
    monkeypatch.setenv("STATEFUN_DISABLED_PLUGINS", "slow-batches")
    with pytest.raises(UnknownTypeError, match=DISABLED_TYPE):
        statefun_tornado.make_routes(decimal_functions())
    with pytest.raises(UnknownTypeError, match=DISABLED_TYPE):
        statefun_tornado.make_app(decimal_functions())


def test_a_plugin_endpoint_at_the_function_path_fails_make_routes() -> None:
    plugins = make_plugin_manager([PingEndpoints()], load_entrypoints=False)
    with pytest.raises(PluginError, match="'PingEndpoints' contributes the endpoint GET /ping"):
        statefun_tornado.make_routes(make_functions(), "ping/", plugins=plugins)
    statefun_tornado.make_routes(make_functions(), "ping/", plugins=plugins, endpoints=False)
