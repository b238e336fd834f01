"""The HTTP transport's retry rules against a real server (protocol §11)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Callable

import pytest
from aiohttp import web
from google.protobuf.message import Message
from statefun_local import parse_module
from statefun_local.transport import CallFailedError, HttpTransport

from statefun_core import protocol

GOOD = protocol.FromFunction()
GOOD.invocation_result.outgoing_egresses.add(egress_namespace="a", egress_type="out")
GOOD_REPLY = GOOD.SerializeToString()

Responder = Callable[[int], web.StreamResponse]


async def call_with(responder: Responder, endpoint_yaml: str) -> tuple[Message | str, int]:
    """Call a server answering request n with ``responder(n)``; (the parsed reply or the
    error, requests)."""
    requests = 0

    async def handle(request: web.Request) -> web.StreamResponse:
        nonlocal requests
        requests += 1
        await request.read()
        response = responder(requests)
        if isinstance(response, web.Response) and response.status == 599:
            await asyncio.sleep(1.5)  # slower than the call budget
        return response

    app = web.Application()
    app.router.add_post("/fn", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    module = parse_module(endpoint_yaml.replace("URL", f"http://127.0.0.1:{port}/fn"))
    try:
        async with HttpTransport() as transport:
            try:
                reply: Message | str = await transport.call(module.endpoints[0], "a/b", b"")
            except CallFailedError as error:
                reply = str(error)
    finally:
        await runner.cleanup()
    return reply, requests


ASYNC = """
kind: io.statefun.endpoints.v2/http
spec: {functions: a/*, urlPathTemplate: URL, transport: {call: 1s}}
"""
OKHTTP = """
kind: io.statefun.endpoints.v1/http
spec:
  functions: a/*
  urlPathTemplate: URL
  timeouts: {call: 1s, connect: 1s, read: 1s, write: 1s}
"""


def ok() -> web.Response:
    return web.Response(body=GOOD_REPLY, content_type="application/octet-stream")


@pytest.mark.parametrize(
    "bad",
    [
        lambda: web.Response(status=500, text="boom"),
        lambda: web.Response(status=400, text="bad"),  # the async transport retries 4xx too
        lambda: web.Response(body=GOOD_REPLY, content_type="application/json"),
        lambda: web.Response(body=b"\xff\xff\xff", content_type="application/octet-stream"),
    ],
    ids=["500", "400", "wrong content type", "not a FromFunction"],
)
def test_async_transport_retries_every_failure(bad: Callable[[], web.Response]) -> None:
    reply, requests = asyncio.run(call_with(lambda n: bad() if n <= 2 else ok(), ASYNC))
    assert reply == GOOD
    assert requests == 3


def test_content_type_must_be_exact() -> None:
    def charset(n: int) -> web.Response:
        return web.Response(body=GOOD_REPLY, headers={
            "Content-Type": "application/octet-stream; charset=utf-8"})

    reply, requests = asyncio.run(call_with(charset, ASYNC))
    assert isinstance(reply, str) and "Content-Type" in reply
    assert requests >= 2  # retried, not given up at once


def test_okhttp_transport_fails_at_once_on_a_client_error_but_retries_503() -> None:
    reply, requests = asyncio.run(
        call_with(lambda n: web.Response(status=404, text="no such function"), OKHTTP)
    )
    assert isinstance(reply, str) and "HTTP 404: no such function" in reply
    assert requests == 1
    reply, requests = asyncio.run(
        call_with(lambda n: web.Response(status=503) if n == 1 else ok(), OKHTTP)
    )
    assert (reply, requests) == (GOOD, 2)


def test_a_redirect_is_not_followed() -> None:
    # as the runtime: a URL without the slash the server redirects to fails here too
    def redirect(n: int) -> web.Response:
        return web.Response(status=307, headers={"Location": "/fn"}) if n == 1 else ok()

    reply, requests = asyncio.run(call_with(redirect, OKHTTP))
    assert isinstance(reply, str) and "HTTP 307 to /fn: the runtime follows no redirect" in reply
    assert requests == 1


def test_the_call_budget_ends_retries() -> None:
    reply, _ = asyncio.run(call_with(lambda n: web.Response(status=599), ASYNC))
    assert isinstance(reply, str)
    assert "timed out" in reply and "call timeout exhausted" in reply


def test_a_last_attempt_cut_short_by_the_budget_names_the_failure_before_it() -> None:
    def down_then_slow(n: int) -> web.Response:  # 599: slower than the budget (call_with)
        return web.Response(status=500, text="down for now") if n == 1 else web.Response(status=599)

    reply, requests = asyncio.run(call_with(down_then_slow, ASYNC))
    assert requests == 2
    assert isinstance(reply, str) and "failed after 2 attempt(s)" in reply
    assert "timed out, after HTTP 500: down for now (call timeout exhausted)" in reply


def test_okhttp_transport_calls_a_unix_socket(tmp_path: Path) -> None:
    async def scenario() -> tuple[Message, str]:
        paths = []

        async def handle(request: web.Request) -> web.Response:
            paths.append(request.path)
            return ok()

        app = web.Application()
        app.router.add_post("/statefun/{name}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        socket_path = tmp_path / "fn.sock"
        await web.UnixSite(runner, str(socket_path)).start()
        module = parse_module(f"""
kind: io.statefun.endpoints.v2/http
spec:
  functions: a/*
  urlPathTemplate: http+unix://{socket_path}/statefun/{{function.name}}
  transport: {{type: io.statefun.transports.v1/okhttp}}
""")
        try:
            async with HttpTransport() as transport:
                reply = await transport.call(module.endpoints[0], "a/greeter", b"")
        finally:
            await runner.cleanup()
        return reply, paths[0]

    assert asyncio.run(scenario()) == (GOOD, "/statefun/greeter")
