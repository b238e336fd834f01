"""statefun_tornado against a real Tornado HTTPServer on 127.0.0.1, with real protobuf bytes."""

from __future__ import annotations

import asyncio
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest
import statefun_tornado
from tornado import testing
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.tcpclient import TCPClient
from tornado.testing import gen_test
from tornado.web import Application

from statefun_core import RequestReplyHandler, StatefulFunctions, ValueSpec, make_plugin_manager
from statefun_core.engine import StateSpec
from statefun_core.errors import MethodNotAllowedError, RequestTooLargeError, UnknownTypeError
from statefun_core.plugins import Endpoint, EndpointResponse
from statefun_core.testing import endpoint, wire
from statefun_core.testing.endpoint import (
    BLOCKING,
    FAILING,
    GREETER,
    INBOX,
    NEW,
    FailureRecorder,
    HeaderRecorder,
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
        response = await self.post(wire.to_function(GREETER, "Cy", ["Cy"], NEW))
        assert response.code == 200
        assert greetings(response.body)[0] == 1

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

    @gen_test
    async def test_raising_function_is_500_without_traceback(self) -> None:
        with self.assertLogs("statefun_core", logging.ERROR) as logs:
            response = await self.post(wire.to_function(FAILING, "x", ["x"]))
        assert response.code == 500
        assert response.body == b"Internal Server Error: the function failed"
        assert b"on purpose" not in response.body
        assert "on purpose" in logs.output[0]
        response = await self.post(wire.to_function(GREETER, "Di", ["Di"], NEW))
        assert response.code == 200

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


class RoutesTest(testing.AsyncHTTPTestCase):
    """``make_routes`` in an application's own table, with a ready handler."""

    def get_app(self) -> Application:
        handler = RequestReplyHandler(
            make_functions(), plugins=make_plugin_manager(load_entrypoints=False)
        )
        routes = statefun_tornado.make_routes(handler, "/fns", endpoints=False)
        other = Endpoint("GET", "/other", lambda headers: EndpointResponse(200, {}, b"other"))
        return Application(
            [*routes, (r"/other", statefun_tornado.EndpointHandler, {"endpoint": other})]
        )

    def test_served_at_the_given_path(self) -> None:
        response = self.fetch(
            "/fns",
            method="POST",
            body=wire.to_function(GREETER, "Ann", ["Ann"], NEW),
        )
        assert response.code == 200
        assert greetings(response.body)[0] == 1
        assert self.fetch("/statefun", method="POST", body=b"").code == 404

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
            assert "'statefun_handler' setting" in logs.output[0]


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
