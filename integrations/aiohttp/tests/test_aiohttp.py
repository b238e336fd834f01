"""statefun_aiohttp against a real aiohttp server on 127.0.0.1, with real protobuf bytes."""

from __future__ import annotations

import asyncio
import contextvars
import io
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from importlib import metadata
from typing import Any, Awaitable, Callable

import pytest
import statefun_aiohttp
from aiohttp import test_utils, web

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
    MalformedRequestError,
    MethodNotAllowedError,
    PluginError,
    RequestTooLargeError,
    UnknownTypeError,
)
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
    PingEndpoints,
    greetings,
)
from statefun_core.testing.packaging import check_framework_imported_on_use, check_import_guard

LIMIT = 64 * 1024
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"

# What setup raises for a state whose type only a disabled plugin resolves.
DISABLED_TYPE = (
    r"function 'bank/account', state 'balance': no StateFun type is known for decimal\.Decimal"
    r".*disabled plugins: slow-batches \(STATEFUN_DISABLED_PLUGINS\)"
)


def make_functions() -> StatefulFunctions:
    # The greeter yields between reading and writing its state: concurrent requests interleave.
    return endpoint.make_functions(interleave=True, blocking=True)


class StatefunAppTest(test_utils.AioHTTPTestCase):
    """``setup(app, ...)`` on an existing application."""

    async def get_application(self) -> web.Application:
        self.recorder = HeaderRecorder("X-Request-Id")
        self.failures = FailureRecorder()
        self.executor = ThreadPoolExecutor(2, thread_name_prefix="statefun-blocking")
        app = web.Application(client_max_size=LIMIT)
        self.handler = statefun_aiohttp.setup(
            app,
            make_functions(),
            executor=self.executor,
            plugins=make_plugin_manager([self.recorder, self.failures], load_entrypoints=False),
        )
        return app

    async def asyncTearDown(self) -> None:
        await super().asyncTearDown()
        self.executor.shutdown()

    async def post(
        self, body: bytes, path: str = "/statefun", **kwargs: Any
    ) -> tuple[int, dict[str, str], bytes]:
        async with self.client.post(path, data=body, **kwargs) as response:
            raw = {key.decode(): value.decode() for key, value in response.raw_headers}
            return response.status, raw, await response.read()

    async def test_greeter_reply(self) -> None:
        status, headers, body = await self.post(
            wire.to_function(GREETER, "Ann", ["Ann"], {"seen_count": 2})
        )
        assert status == 200
        assert headers["Content-Type"] == "application/octet-stream"
        assert greetings(body) == (3, [(INBOX, "Ann", "Hello Ann for the 3th time!")])

    async def test_a_reply_names_the_server_without_a_version(self) -> None:
        """No plugin here adds reply headers: the plain reply has its own ``Server``."""
        status, headers, _ = await self.post(wire.to_function(GREETER, "Ann", ["Ann"], NEW))
        assert status == 200
        assert headers["Server"] == "aiohttp"
        assert headers["Content-Type"] == "application/octet-stream"

    async def test_handler_is_reachable_through_the_app_key(self) -> None:
        assert self.app[statefun_aiohttp.HANDLER_KEY] is self.handler

    async def test_state_discovery(self) -> None:
        status, headers, body = await self.post(wire.to_function(GREETER, "Ann", ["Ann"]))
        assert status == 200
        assert headers["Content-Type"] == "application/octet-stream"
        assert wire.missing_states(body) == [StateSpec("seen_count", "io.statefun.types/int")]

    async def test_batch(self) -> None:
        status, _, body = await self.post(wire.to_function(GREETER, "Bo", ["Bo", "Bo", "Bo"], NEW))
        assert status == 200
        seen, sent = greetings(body)
        assert seen == 3
        assert [text for _, _, text in sent] == [f"Hello Bo for the {n}th time!" for n in (1, 2, 3)]

    async def test_garbage_body_is_400(self) -> None:
        status, _, body = await self.post(b"\xff\xff\xff not a protobuf")
        assert status == 400
        assert b"Traceback" not in body

    async def test_unknown_function_is_404(self) -> None:
        status, _, _ = await self.post(wire.to_function("com.example.fns/nobody", "x", ["x"], NEW))
        assert status == 404

    async def test_get_is_405_with_allow(self) -> None:
        async with self.client.get("/statefun") as response:
            assert response.status == 405
            assert response.headers["Allow"] == "POST"

    async def test_body_over_client_max_size_is_413(self) -> None:
        status, _, _ = await self.post(b"\x00" * (LIMIT + 1))
        assert status == 413
        status, _, body = await self.post(wire.to_function(GREETER, "Cy", ["Cy"], NEW))
        assert status == 200
        assert greetings(body)[0] == 1

    async def test_framework_rejections_reach_the_hooks(self) -> None:
        async with self.client.get("/statefun", headers={"X-Request-Id": "r-1"}) as response:
            assert response.status == 405
        status, _, _ = await self.post(b"\x00" * (LIMIT + 1), headers={"X-Request-Id": "r-2"})
        assert status == 413
        assert self.failures.failures == [
            (MethodNotAllowedError, 405, "r-1"),
            (RequestTooLargeError, 413, "r-2"),
        ]
        assert self.failures.batches == [None, None]  # rejected before a batch existed

    async def test_served_with_and_without_trailing_slash(self) -> None:
        """As every other integration: a ``urlPathTemplate`` may end in a slash or not."""
        for n, path in enumerate(("/statefun", "/statefun/")):
            status, _, body = await self.post(
                wire.to_function(GREETER, "Sl", ["Sl"], {"seen_count": n}), path=path
            )
            assert status == 200, path
            assert greetings(body)[0] == n + 1

    async def test_a_wrong_method_is_named_in_the_rejection(self) -> None:
        with self.assertLogs("statefun_core", logging.INFO) as logs:
            async with self.client.delete("/statefun") as response:
                assert response.status == 405
        assert [r.getMessage() for r in logs.records] == [
            "statefun request rejected (405): DELETE is not allowed"
        ]

    async def test_a_body_aiohttp_cannot_decode_is_a_400_that_reaches_the_hooks(self) -> None:
        """``Content-Encoding: gzip`` on bytes that are not: aiohttp fails the read, a client's
        error (the runtime never compresses), answered as a body that is not a ToFunction."""
        for encoding, data in (("gzip", b"\x1f\x8b not gzip at all"), ("deflate", b"nope")):
            with self.assertLogs("statefun_core", logging.INFO) as logs:
                status, headers, body = await self.post(
                    data,
                    headers={"Content-Encoding": encoding, "Connection": "close"},
                )
            assert status == 400, encoding
            assert headers["Server"] == "aiohttp"
            assert headers["Content-Type"] == "text/plain; charset=utf-8"
            assert body == b"Bad Request: the body is not a StateFun ToFunction message"
            (logged,) = logs.records
            assert logged.levelno == logging.WARNING and logged.exc_info is None
            assert logged.getMessage().startswith(
                "statefun request rejected (400): the request body cannot be read: "
            )
        assert [error for error, _, _ in self.failures.failures] == [MalformedRequestError] * 2
        status, _, _ = await self.post(wire.to_function(GREETER, "Di", ["Di"], NEW))
        assert status == 200

    async def test_raising_function_is_500_without_traceback(self) -> None:
        with self.assertLogs("statefun_core", logging.ERROR) as logs:
            status, _, body = await self.post(wire.to_function(FAILING, "x", ["x"]))
        assert status == 500
        assert body and b"Traceback" not in body and b"on purpose" not in body
        assert "on purpose" in logs.output[0]
        status, _, _ = await self.post(wire.to_function(GREETER, "Di", ["Di"], NEW))
        assert status == 200

    async def test_headers_reach_the_hooks(self) -> None:
        await self.post(
            wire.to_function(GREETER, "Ed", ["Ed"], NEW),
            headers={"X-Request-Id": "r-42"},
        )
        assert self.recorder.headers == [{"X-Request-Id": "r-42"}]

    async def test_blocking_function_runs_on_the_given_executor(self) -> None:
        status, _, body = await self.post(wire.to_function(BLOCKING, "Fi", ["Fi"]))
        assert status == 200
        ((_, _, thread_name),) = greetings(body)[1]
        assert thread_name.startswith("statefun-blocking")

    async def test_concurrent_requests_do_not_cross_talk(self) -> None:
        names = [f"user-{n}" for n in range(200)]

        async def greet(n: int, name: str) -> tuple[str, tuple[Any, ...]]:
            status, _, body = await self.post(
                wire.to_function(GREETER, name, [name], {"seen_count": n})
            )
            assert status == 200
            return name, greetings(body)

        replies = await asyncio.gather(*(greet(n, name) for n, name in enumerate(names)))
        for n, (name, (seen, sent)) in enumerate(replies):
            assert seen == n + 1
            assert sent == [(INBOX, name, f"Hello {name} for the {n + 1}th time!")]


class SubAppTest(test_utils.AioHTTPTestCase):
    """``create_app`` mounted with ``add_subapp``: the handler is found through config_dict."""

    async def get_application(self) -> web.Application:
        self.handler = RequestReplyHandler(
            make_functions(), plugins=make_plugin_manager(load_entrypoints=False)
        )
        app = web.Application()
        app.add_subapp("/statefun/", statefun_aiohttp.create_app(self.handler))
        return app

    async def test_served_with_and_without_trailing_slash(self) -> None:
        for path in ("/statefun", "/statefun/"):
            async with self.client.post(
                path, data=wire.to_function(GREETER, "Ann", ["Ann"], NEW)
            ) as response:
                assert response.status == 200
                assert response.headers["Content-Type"] == "application/octet-stream"
                assert greetings(await response.read())[0] == 1

    async def test_get_is_405(self) -> None:
        async with self.client.get("/statefun") as response:
            assert response.status == 405


#: What the test middleware puts in the request's context for the functions (README).
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


@web.middleware
async def request_id(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    REQUEST_ID.set(request.headers.get("X-Request-Id", "none"))
    return await handler(request)


class MiddlewareContextTest(test_utils.AioHTTPTestCase):
    """README: functions run in the request's task, so a context variable a middleware sets is
    seen by every function (a blocking one in the executor too), and by no other request."""

    async def get_application(self) -> web.Application:
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="statefun-blocking")
        app = web.Application(middlewares=[request_id])
        statefun_aiohttp.setup(
            app,
            context_functions(),
            executor=self.executor,
            plugins=make_plugin_manager(load_entrypoints=False),
        )
        return app

    async def asyncTearDown(self) -> None:
        await super().asyncTearDown()
        self.executor.shutdown()

    async def seen(self, typename: str, request_id: str) -> str:
        headers = {"X-Request-Id": request_id} if request_id else {}
        body = wire.to_function(typename, "Ann", ["Ann"])
        async with self.client.post("/statefun", data=body, headers=headers) as response:
            assert response.status == 200
            (sent,) = greetings(await response.read())[1]
            return sent[2] or ""

    async def test_functions_see_the_middlewares_context(self) -> None:
        loop_thread = threading.current_thread().name
        for typename, thread in (
            ("ctx/async", loop_thread),
            ("ctx/sync", loop_thread),
            ("ctx/blocking", "statefun-blocking_0"),
        ):
            assert await self.seen(typename, "r-1") == f"r-1 {thread}"
            assert await self.seen(typename, "") == f"none {thread}"


class HandleRequestTest(test_utils.AioHTTPTestCase):
    """``handle_request`` and ``endpoint_view`` routed by the application itself: the handler
    is the one ``setup`` keeps under ``HANDLER_KEY``."""

    async def get_application(self) -> web.Application:
        self.failures = FailureRecorder()
        app = web.Application()
        plugins = make_plugin_manager([self.failures], load_entrypoints=False)
        statefun_aiohttp.setup(app, make_functions(), plugins=plugins, endpoints=False)
        app.router.add_route("*", "/own", statefun_aiohttp.handle_request)
        other = Endpoint(
            "GET", "/other", lambda headers: EndpointResponse(200, {"X-Other": "1"}, b"other")
        )
        app.router.add_get("/other", statefun_aiohttp.endpoint_view(other))
        return app

    async def test_handle_request_serves_the_functions(self) -> None:
        body = wire.to_function(GREETER, "Ann", ["Ann"], {"seen_count": 1})
        async with self.client.post("/own", data=body) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "application/octet-stream"
            assert greetings(await response.read()) == (
                2,
                [(INBOX, "Ann", "Hello Ann for the 2th time!")],
            )

    async def test_handle_request_refuses_other_methods(self) -> None:
        async with self.client.get("/own", headers={"X-Request-Id": "r-5"}) as response:
            assert response.status == 405
            assert response.headers["Allow"] == "POST"
        assert self.failures.failures == [(MethodNotAllowedError, 405, "r-5")]

    async def test_endpoint_view_answers_get_and_head(self) -> None:
        async with self.client.get("/other") as response:
            assert response.status == 200
            assert response.headers["X-Other"] == "1"
            assert response.headers["Server"] == "aiohttp"
            assert await response.read() == b"other"
        async with self.client.head("/other") as response:
            assert response.status == 200
            assert response.headers["Server"] == "aiohttp"


class HandleRequestWithoutAHandlerTest(test_utils.AioHTTPTestCase):
    """``handle_request`` routed where ``HANDLER_KEY`` holds no handler (never set, or set to
    the StatefulFunctions ``setup`` takes): each request is a short 500 logged with what to set,
    not aiohttp's page for a KeyError or an AttributeError."""

    async def get_application(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/unset", statefun_aiohttp.handle_request)
        app.router.add_post(
            "/unset-expect",
            statefun_aiohttp.handle_request,
            expect_handler=statefun_aiohttp.expect_continue,
        )
        functions = web.Application()
        functions[statefun_aiohttp.HANDLER_KEY] = make_functions()  # type: ignore[misc]
        functions.router.add_route("*", "/", statefun_aiohttp.handle_request)
        app.add_subapp("/functions/", functions)
        return app

    async def test_each_request_is_a_logged_500_that_says_what_to_set(self) -> None:
        greeting = wire.to_function(GREETER, "Ann", ["Ann"], NEW)
        requests = [
            ("/unset", "POST", {}, "no handler"),
            ("/unset", "GET", {}, "no handler"),
            ("/functions/", "POST", {}, "a StatefulFunctions, not a RequestReplyHandler"),
            ("/functions/", "GET", {}, "a StatefulFunctions, not a RequestReplyHandler"),
            # last: answered unread, the body is left on the connection (aiohttp 3.9)
            ("/unset-expect", "POST", {"Expect": "100-continue"}, "no handler"),
        ]
        for path, method, headers, found in requests:
            with self.assertLogs("statefun_core", logging.ERROR) as logs:
                async with self.client.request(
                    method, path, data=greeting if method == "POST" else None, headers=headers
                ) as response:
                    assert response.status == 500, (path, method)
                    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
                    assert await response.read() == b"Internal Server Error"
            assert found in logs.output[0], logs.output
            assert "app[statefun_aiohttp.HANDLER_KEY] = RequestReplyHandler(" in logs.output[0]


class EndpointsTest(test_utils.AioHTTPTestCase):
    """The plugins' endpoints ``setup`` routes, two of them at one path."""

    async def get_application(self) -> web.Application:
        app = web.Application()
        plugins = make_plugin_manager([PingEndpoints()], load_entrypoints=False)
        statefun_aiohttp.setup(app, make_functions(), plugins=plugins)
        return app

    async def test_each_method_finds_its_endpoint(self) -> None:
        async with self.client.get("/ping") as response:
            assert (response.status, await response.read()) == (200, b"got")
        async with self.client.post("/ping") as response:
            assert (response.status, await response.read()) == (202, b"posted")
        async with self.client.put("/ping") as response:
            assert response.status == 405
            assert response.headers["Allow"] == "GET, HEAD, POST"
            assert response.headers["Server"] == "aiohttp"
        async with self.client.head("/pong") as response:
            assert (response.status, response.headers["Allow"]) == (405, "POST")


class EndpointsLeftOutTest(test_utils.AioHTTPTestCase):
    """``setup(..., endpoints=False)``: the plugins' endpoints are not routed."""

    async def get_application(self) -> web.Application:
        app = web.Application()
        plugins = make_plugin_manager([PingEndpoints()], load_entrypoints=False)
        statefun_aiohttp.setup(app, make_functions(), plugins=plugins, endpoints=False)
        return app

    async def test_the_endpoints_are_not_served(self) -> None:
        async with self.client.get("/ping") as response:
            assert response.status == 404
        body = wire.to_function(GREETER, "Ann", ["Ann"], NEW)
        async with self.client.post("/statefun", data=body) as response:
            assert response.status == 200


class CreateAppTest(test_utils.AioHTTPTestCase):
    """``create_app`` run as the application itself: its options reach the handler it builds."""

    async def get_application(self) -> web.Application:
        self.recorder = HeaderRecorder("X-Request-Id")
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="statefun-created")
        plugins = make_plugin_manager([self.recorder, PingEndpoints()], load_entrypoints=False)
        return statefun_aiohttp.create_app(
            make_functions(), executor=self.executor, plugins=plugins
        )

    async def asyncTearDown(self) -> None:
        await super().asyncTearDown()
        self.executor.shutdown()

    async def test_the_given_plugins_and_executor(self) -> None:
        body = wire.to_function(BLOCKING, "Fi", ["Fi"])
        async with self.client.post("/", data=body, headers={"X-Request-Id": "r-7"}) as response:
            assert response.status == 200
            ((_, _, thread_name),) = greetings(await response.read())[1]
        assert thread_name.startswith("statefun-created")
        assert self.recorder.headers == [{"X-Request-Id": "r-7"}]

    async def test_the_plugins_endpoints_are_served(self) -> None:
        async with self.client.get("/ping") as response:
            assert (response.status, await response.read()) == (200, b"got")

    async def test_the_default_limit_is_the_runtimes_not_aiohttps(self) -> None:
        """aiohttp's default client_max_size, 1 MiB, is too small for the runtime's batches."""
        name = "x" * (2 * 1024 * 1024)
        body = wire.to_function(GREETER, "Ann", [name], NEW)
        # a BytesIO: aiohttp's client warns of bytes over 1 MiB (a ResourceWarning)
        async with self.client.post("", data=io.BytesIO(body)) as response:
            assert response.status == 200
            assert greetings(await response.read())[0] == 1


class CreateAppOptionsTest(test_utils.AioHTTPTestCase):
    """``create_app(..., client_max_size=..., endpoints=False)``."""

    async def get_application(self) -> web.Application:
        plugins = make_plugin_manager([PingEndpoints()], load_entrypoints=False)
        return statefun_aiohttp.create_app(
            make_functions(), client_max_size=LIMIT, plugins=plugins, endpoints=False
        )

    async def test_the_given_limit_and_no_endpoints(self) -> None:
        async with self.client.post("/", data=b"\x00" * (LIMIT + 1)) as response:
            assert response.status == 413
            assert f"over the limit of {LIMIT} bytes (client_max_size)" in await response.text()
        async with self.client.get("/ping") as response:
            assert response.status == 404


class MetricsTest(test_utils.AioHTTPTestCase):
    async def get_application(self) -> web.Application:
        pytest.importorskip("statefun_prometheus")
        app = web.Application()
        statefun_aiohttp.setup(app, make_functions())  # the installed plugins, prometheus too
        return app

    async def test_metrics_after_a_request(self) -> None:
        await self.client.post("/statefun", data=wire.to_function(GREETER, "Ann", ["Ann"], NEW))
        async with self.client.get("/metrics") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            assert 'statefun_batches_total{function_type="com.example.fns/greeter"' in (
                await response.text()
            )


def test_a_client_gone_before_its_body_is_in_is_no_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Logged at debug level, without a traceback, and no hook hears of it: nothing ran and
    no one is left to answer (as Tornado's endpoint). Served as ``web.run_app`` serves, the
    handler not cancelled with the connection (the test server cancels it)."""
    failures = FailureRecorder()
    app = web.Application(client_max_size=32 * 1024 * 1024)
    plugins = make_plugin_manager([failures], load_entrypoints=False)
    statefun_aiohttp.setup(app, make_functions(), plugins=plugins)

    def records(name: str = "statefun_core") -> list[logging.LogRecord]:
        return [record for record in caplog.records if record.name == name]

    async def disconnect() -> None:
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            head = b"POST /statefun HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n"
            writer.write(head + b"\x00" * 10)
            await writer.drain()
            await asyncio.sleep(0.1)  # the endpoint waits for the rest of the body
            writer.close()
            await writer.wait_closed()
            for _ in range(1000):
                if records() and records("aiohttp.access"):
                    break
                await asyncio.sleep(0.01)
        finally:
            await runner.cleanup()

    caplog.set_level(logging.INFO, logger="aiohttp.access")  # the status it answered with
    with caplog.at_level(logging.DEBUG, logger="statefun_core"):
        asyncio.run(disconnect())
    assert [(r.levelno, r.exc_info) for r in records()] == [(logging.DEBUG, None)], caplog.text
    assert records()[0].getMessage().startswith("statefun request abandoned"), caplog.text
    assert failures.failures == []
    # nor does aiohttp log an error: the view answered as a view must, a 400 (in the access
    # log only: no one reads the answer)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == [], caplog.text
    (access,) = records("aiohttp.access")
    assert '"POST /statefun HTTP/1.1" 400 ' in access.getMessage(), caplog.text


def test_a_blocking_batch_cancelled_with_its_client_starts_no_further_invocation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With ``handler_cancellation=True`` aiohttp cancels the handler of a request whose client
    went (the runtime's ``call`` timeout): the invocation running in the executor's thread runs
    to its end, the batch's next ones never start, and one warning with the request's trace id
    says so."""
    functions = StatefulFunctions()
    entered, release = threading.Event(), threading.Event()
    ran: list[str] = []

    @functions.bind("example/slow", blocking=True)
    def slow(context: Context, message: Message) -> None:
        ran.append(message.as_string())
        entered.set()
        release.wait()

    failures = FailureRecorder()
    executor = ThreadPoolExecutor(1)
    app = statefun_aiohttp.create_app(
        functions,
        executor=executor,
        plugins=make_plugin_manager([failures], load_entrypoints=False),
    )

    async def client_goes() -> None:
        runner = web.AppRunner(app, handler_cancellation=True)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        try:
            body = wire.to_function("example/slow", "ann", ["first", "second", "third"])
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            head = (
                "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"traceparent: 00-{TRACE_ID}-b7ad6b7169203331-01\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
            await asyncio.get_running_loop().run_in_executor(None, entered.wait)
            writer.close()  # the runtime gives up
            await writer.wait_closed()
            for _ in range(10_000):  # until the handler heard of the cancellation
                if failures.failures:
                    break
                await asyncio.sleep(0.001)
        finally:
            release.set()
            await runner.cleanup()

    try:
        with caplog.at_level(logging.INFO, logger="statefun_core"):
            asyncio.run(client_goes())
    finally:
        release.set()
        executor.shutdown(wait=True)  # the thread ran what it was going to run
    assert failures.failures == [(asyncio.CancelledError, None, None)]
    assert ran == ["first"]
    (line,) = [r for r in caplog.records if r.name == "statefun_core"]
    assert line.levelno == logging.WARNING, caplog.text
    assert line.getMessage().startswith(
        "statefun request cancelled: function 'example/slow' for id 'ann' gets no reply"
    )
    assert line.__dict__["trace_id"] == TRACE_ID


def test_a_413_from_aiohttps_default_limit_says_where_to_raise_it() -> None:
    """The README's trap: create_app mounted in an application left at aiohttp's 1 MiB."""
    root = web.Application()
    root.add_subapp("/statefun/", statefun_aiohttp.create_app(make_functions()))
    body = wire.to_function(GREETER, "Ann", ["x" * (2 * 1024 * 1024)], NEW)

    async def post() -> tuple[int, str]:
        client = test_utils.TestClient(test_utils.TestServer(root))
        async with client, client.post("/statefun", data=io.BytesIO(body)) as response:
            return response.status, await response.text()

    status, text = asyncio.run(post())
    assert status == 413
    assert "(client_max_size, aiohttp's default: set it on the web.Application" in text


def test_setup_rejects_executor_with_a_ready_handler() -> None:
    handler = RequestReplyHandler(make_functions(), plugins=make_plugin_manager())
    with pytest.raises(ValueError, match="RequestReplyHandler"):
        statefun_aiohttp.setup(web.Application(), handler, executor=ThreadPoolExecutor(1))


def test_the_framework_is_imported_on_use_not_by_the_plugin_host() -> None:
    check_framework_imported_on_use(
        "statefun_aiohttp", entry_point="aiohttp", framework="aiohttp", export="setup"
    )


def test_entry_point_names_the_integration() -> None:
    plugin = make_plugin_manager().get_plugin("aiohttp")  # loaded from its entry point
    assert plugin.FRAMEWORK == "aiohttp"
    # the distribution that registers it
    entry_points = metadata.distribution(plugin.DISTRIBUTION).entry_points
    assert [ep.name for ep in entry_points if ep.group == "statefun"] == ["aiohttp"]


def test_import_without_aiohttp_says_what_to_install() -> None:
    check_import_guard("statefun_aiohttp", missing="aiohttp", distribution="statefun-aiohttp")


def test_a_state_of_a_disabled_type_plugin_fails_at_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example plugin's Decimal type: resolved when it is on, refused at setup when off."""
    pytest.importorskip("statefun_slow_batches")

    def decimal_functions() -> StatefulFunctions:
        functions = StatefulFunctions()
        functions.register("bank/account", lambda c, m: None, [ValueSpec("balance", type=Decimal)])
        return functions

    statefun_aiohttp.setup(web.Application(), decimal_functions())
    monkeypatch.setenv("STATEFUN_DISABLED_PLUGINS", "slow-batches")
    with pytest.raises(UnknownTypeError, match=DISABLED_TYPE):
        statefun_aiohttp.setup(web.Application(), decimal_functions())
    with pytest.raises(UnknownTypeError, match=DISABLED_TYPE):
        statefun_aiohttp.create_app(decimal_functions())


def test_a_plugin_endpoint_at_the_function_path_fails_setup() -> None:
    plugins = make_plugin_manager([PingEndpoints()], load_entrypoints=False)
    with pytest.raises(PluginError, match="'PingEndpoints' contributes the endpoint GET /ping"):
        statefun_aiohttp.setup(web.Application(), make_functions(), path="/ping", plugins=plugins)
    statefun_aiohttp.setup(
        web.Application(), make_functions(), path="/ping", plugins=plugins, endpoints=False
    )
