"""The HTTP transport's retry rules against a real server (protocol §11)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
import warnings
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Callable, Optional

import pytest
from aiohttp import web
from google.protobuf.message import Message
from statefun_local import parse_module
from statefun_local.transport import CallFailedError, HttpTransport

from statefun_core import protocol
from statefun_core.testing.endpoint import free_port
from statefun_core.tracecontext import TRACERESPONSE

GOOD = protocol.FromFunction()
GOOD.invocation_result.outgoing_egresses.add(egress_namespace="a", egress_type="out")
GOOD_REPLY = GOOD.SerializeToString()

Responder = Callable[[int], web.StreamResponse]


@contextlib.asynccontextmanager
async def serving(
    handle: Callable[[web.Request], Awaitable[web.StreamResponse]],
    route: str = "/fn",
    socket_path: Optional[Path] = None,
) -> AsyncIterator[str]:
    """A server answering POSTs to ``route`` with ``handle``: its base URL, on 127.0.0.1 or
    (``http+unix://``) on ``socket_path``, where it answers POSTs to any path (the runtime's
    request target there is one escaped segment, such as ``/%2Fstatefun``)."""
    app = web.Application(client_max_size=4 * 2**20)  # aiohttp's 1 MiB is less than a batch
    app.router.add_post(route if socket_path is None else "/{any:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        if socket_path is None:
            port = free_port()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            yield f"http://127.0.0.1:{port}"
        else:
            await web.UnixSite(runner, str(socket_path)).start()
            yield f"http+unix://{socket_path}"
    finally:
        await runner.cleanup()


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

    async with serving(handle) as url, HttpTransport() as transport:
        module = parse_module(endpoint_yaml.replace("URL", f"{url}/fn"))
        try:
            reply: Message | str = await transport.call(module.endpoints[0], "a/b", b"")
        except CallFailedError as error:
            reply = str(error)
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
        return web.Response(
            body=GOOD_REPLY, headers={"Content-Type": "application/octet-stream; charset=utf-8"}
        )

    reply, requests = asyncio.run(call_with(charset, ASYNC))
    assert isinstance(reply, str) and "Content-Type" in reply
    assert requests >= 2  # retried, not given up at once


def test_okhttp_transport_fails_at_once_on_a_client_error_but_retries_503() -> None:
    reply, requests = asyncio.run(
        call_with(lambda n: web.Response(status=404, text="no such function"), OKHTTP)
    )
    assert isinstance(reply, str) and "HTTP 404: no such function (is the endpoint's " in reply
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


def test_a_single_attempt_cut_short_by_the_budget_names_no_failure_before_it() -> None:
    reply, requests = asyncio.run(call_with(lambda n: web.Response(status=599), ASYNC))
    assert requests == 1
    assert isinstance(reply, str)
    assert reply.endswith("/fn failed after 1 attempt(s): timed out (call timeout exhausted)")


def test_a_last_attempt_cut_short_by_the_budget_names_the_failure_before_it() -> None:
    def down_then_slow(n: int) -> web.Response:  # 599: slower than the budget (call_with)
        return web.Response(status=500, text="down for now") if n == 1 else web.Response(status=599)

    reply, requests = asyncio.run(call_with(down_then_slow, ASYNC))
    assert requests == 2
    assert isinstance(reply, str) and "failed after 2 attempt(s)" in reply
    assert "timed out, after HTTP 500: down for now (call timeout exhausted)" in reply


@pytest.mark.parametrize(
    ("below_the_socket", "target"),
    [
        # what Apache Flink StateFun 3.3 sent in the e2e kit: its UnixDomainHttpEndpoint takes
        # the path below the socket file as one segment, "/statefun", which OkHttp's
        # addPathSegment escapes, slashes included
        ("/statefun", "/%2Fstatefun"),
        ("", "/%2F"),
        ("/", "/%2F"),
        ("/statefun/{function.name}", "/%2Fstatefun%2Fgreeter"),
        ("/{function.name}", "/%2Fgreeter"),
        ("/x//y/", "/%2Fx%2Fy"),
        ("/a%20b/%7Bq%7D?x=1#f", "/%2Fa%20b%2F%7Bq%7D"),
    ],
)  # fmt: skip
def test_okhttp_transport_calls_a_unix_socket_at_the_runtimes_request_target(
    tmp_path: Path, below_the_socket: str, target: str
) -> None:
    async def scenario() -> tuple[Message, list[tuple[str, str]]]:
        requests = []

        async def handle(request: web.Request) -> web.Response:
            requests.append((request.raw_path, request.host))
            return ok()

        socket = tmp_path / "fn.sock"
        async with serving(handle, socket_path=socket) as url, HttpTransport() as transport:
            module = parse_module(f"""
kind: io.statefun.endpoints.v2/http
spec:
  functions: a/*
  urlPathTemplate: "{url}{below_the_socket}"
  transport:
    type: io.statefun.transports.v1/okhttp
    timeouts: {{call: 2s, connect: 1s, read: 1s, write: 1s}}
""")
            reply = await transport.call(module.endpoints[0], "a/greeter", b"")
        return reply, requests

    assert asyncio.run(scenario()) == (GOOD, [(target, "unused")])


@pytest.mark.parametrize("status", [404, 405])
def test_a_unix_socket_reply_that_says_the_url_is_wrong_names_the_runtimes_target(
    tmp_path: Path, status: int
) -> None:
    """A 404 may be the SDK's own, for a function not bound (such as an address of a type the
    endpoint's ``ns/*`` takes but the server does not serve): the hint asks about that too, as
    over TCP, not about the path only."""

    async def scenario() -> str:
        async def handle(request: web.Request) -> web.Response:
            return web.Response(status=status, text="no")

        async with serving(handle, socket_path=tmp_path / "fn.sock") as url, \
                HttpTransport() as transport:  # fmt: skip
            module = parse_module(OKHTTP.replace("URL", f"{url}/statefun"))
            with pytest.raises(CallFailedError) as failed:
                await transport.call(module.endpoints[0], "a/b", b"")
            return str(failed.value)

    bound = ", and is the function bound there" if status == 404 else ""
    assert asyncio.run(scenario()).endswith(
        f"HTTP {status}: no (over a unix socket the runtime POSTs to /%2Fstatefun: the path "
        "below the socket file as one segment, its slashes escaped; does the function server "
        f"take POSTs there{bound}?)"
    )


@pytest.mark.parametrize("status", [408, 409, 420, 429, 499, 500])
def test_okhttp_transport_retries_408_409_420_429_499_and_5xx(status: int) -> None:
    reply, requests = asyncio.run(
        call_with(lambda n: web.Response(status=status) if n == 1 else ok(), OKHTTP)
    )
    assert (reply, requests) == (GOOD, 2)


@pytest.mark.parametrize(
    ("status", "location", "failure"),
    [
        (299, "/x", None),  # any 2xx is the reply, a Location or not
        (300, None, "HTTP 300: "),
        (300, "/x", "HTTP 300 to /x: the runtime follows no redirect"),
        (399, "/x", "HTTP 399 to /x: the runtime follows no redirect"),
        (400, "/x", "HTTP 400: "),
    ],
)
def test_2xx_is_a_reply_3xx_with_a_location_a_redirect_and_any_other_status_a_failure(
    status: int, location: str | None, failure: str | None
) -> None:
    def respond(n: int) -> web.Response:
        headers = {} if location is None else {"Location": location}
        return web.Response(status=status, body=GOOD_REPLY, headers={
            "Content-Type": "application/octet-stream", **headers})  # fmt: skip

    reply, requests = asyncio.run(call_with(respond, OKHTTP))
    if failure is None:
        assert reply == GOOD
    else:
        assert isinstance(reply, str) and failure in reply and requests == 1


def test_a_failure_reply_is_quoted_to_its_first_200_characters() -> None:
    reply, _ = asyncio.run(
        call_with(lambda n: web.Response(status=400, text="x" * 199 + "yz"), OKHTTP)
    )
    assert isinstance(reply, str) and reply.endswith(f"HTTP 400: {'x' * 199}y")


@pytest.mark.parametrize(("status", "hint"), [
    (404, "(is the endpoint's urlPathTemplate the function server's path, and the function "
          "bound there?)"),
    (405, "(is the endpoint's urlPathTemplate the path the function server takes POSTs at?)"),
])  # fmt: skip
def test_a_reply_that_says_the_url_is_wrong_says_where_to_look(status: int, hint: str) -> None:
    reply, _ = asyncio.run(call_with(lambda n: web.Response(status=status, text="no"), OKHTTP))
    assert isinstance(reply, str) and reply.endswith(f"HTTP {status}: no {hint}")


@pytest.mark.parametrize("chunked", [False, True], ids=["Content-Length", "chunked"])
def test_a_reply_may_be_payload_max_bytes_long_but_no_longer(chunked: bool) -> None:
    def respond(n: int) -> web.Response:
        response = ok()
        if chunked:
            response.enable_chunked_encoding()
        return response

    def limited(size: int) -> str:
        return ASYNC.replace("call: 1s", f"call: 300ms, payload_max_bytes: {size}")

    assert asyncio.run(call_with(respond, limited(len(GOOD_REPLY)))) == (GOOD, 1)
    reply, _ = asyncio.run(call_with(respond, limited(len(GOOD_REPLY) - 1)))
    assert isinstance(reply, str) and "the reply is larger than payload_max_bytes" in reply


def test_retries_back_off_from_2_ms_doubling_are_reported_and_the_error_names_them() -> None:
    url = f"http://127.0.0.1:{free_port()}/fn"  # nobody listens: every attempt fails at once
    endpoint = parse_module(ASYNC.replace("URL", url)).endpoints[0]
    retries: list[tuple[str, int, str]] = []

    async def scenario() -> CallFailedError:
        async with HttpTransport(on_retry=lambda *retry: retries.append(retry)) as transport:
            with pytest.raises(CallFailedError) as failed:
                await transport.call(endpoint, "a/b", b"")
        return failed.value

    error = asyncio.run(scenario())
    # 2 + 4 + ... + 256 ms between the first 9 attempts; the 10th gets what is left of 1 s
    # (fewer on a busy machine, where each attempt takes longer: never more)
    assert 5 <= error.attempts <= 11
    reason = retries[0][2]
    assert reason.startswith("ClientConnectorError")
    assert retries == [(url, n, reason) for n in range(1, error.attempts)]
    # the same failure every time is named once
    assert (error.url, error.reason) == (url, f"{reason} (call timeout exhausted)")


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(300):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not within 3 s")


def test_okhttp_retries_back_off_from_10_ms_doubling() -> None:
    url = f"http://127.0.0.1:{free_port()}/fn"  # nobody listens: every attempt fails at once
    endpoint = parse_module(OKHTTP.replace("URL", url)).endpoints[0]

    async def scenario() -> CallFailedError:
        async with HttpTransport() as transport:
            with pytest.raises(CallFailedError) as failed:
                await transport.call(endpoint, "a/b", b"")
        return failed.value

    error = asyncio.run(scenario())
    # 10 + 20 + ... + 320 ms between the first 7 attempts; the 8th gets what is left of 1 s
    # (fewer on a busy machine, where each attempt takes longer: never more)
    assert 3 <= error.attempts <= 8


@pytest.mark.parametrize("unix", [False, True], ids=["tcp", "unix socket"])
def test_calls_share_a_connection_until_the_transport_closes_which_a_call_reopens(
    tmp_path: Path, unix: bool
) -> None:
    async def scenario() -> None:
        connections: list[asyncio.BaseTransport] = []

        async def handle(request: web.Request) -> web.Response:
            await request.read()
            assert request.transport is not None
            connections.append(request.transport)
            return ok()

        async with serving(handle, socket_path=tmp_path / "fn.sock" if unix else None) as url:
            endpoint = parse_module(OKHTTP.replace("URL", f"{url}/fn")).endpoints[0]
            async with HttpTransport() as transport:
                for _ in range(2):
                    assert await transport.call(endpoint, "a/b", b"") == GOOD
                assert connections[0] is connections[1]  # kept alive
                await transport.close()
                await until(connections[0].is_closing)
                assert await transport.call(endpoint, "a/b", b"") == GOOD
            await until(connections[2].is_closing)  # leaving the transport closes it

    asyncio.run(scenario())


def test_a_call_sends_the_runtimes_request_headers() -> None:
    """protocol §1: the headers of the runtime's default transport."""
    seen: list[dict[str, str]] = []

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        seen.append(dict(request.headers))
        return ok()

    async def scenario() -> None:
        async with serving(handle) as url, HttpTransport() as transport:
            for yaml in (ASYNC, OKHTTP):
                endpoint = parse_module(yaml.replace("URL", f"{url}/fn")).endpoints[0]
                assert await transport.call(endpoint, "a/b", b"body") == GOOD

    asyncio.run(scenario())
    assert len(seen) == 2
    for headers in seen:
        assert headers["Content-Type"] == "application/octet-stream"
        assert headers["Accept"] == "application/octet-stream"
        assert headers["Accept-Encoding"] == "gzip,deflate"
        assert headers["User-Agent"] == "statefun"
        assert headers["Content-Length"] == "4"


def test_a_call_sends_the_headers_it_is_given_and_its_body() -> None:
    seen: list[tuple[Optional[str], bytes]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append((request.headers.get("traceparent"), await request.read()))
        return ok()

    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    async def scenario() -> None:
        async with serving(handle) as url, HttpTransport() as transport:
            endpoint = parse_module(ASYNC.replace("URL", f"{url}/fn")).endpoints[0]
            await transport.call(endpoint, "a/b", b"batch", {"traceparent": traceparent})
            await transport.call(endpoint, "a/b", b"", {})

    asyncio.run(scenario())
    assert seen == [(traceparent, b"batch"), (None, b"")]


def test_a_batch_over_a_mebibyte_is_sent_whole_and_warns_of_nothing() -> None:
    """aiohttp warns (a ResourceWarning) of a body over 1 MiB given as bytes: a batch with a
    large state did, which failed the tests of a user who runs them with warnings as errors."""
    seen: list[tuple[Optional[str], Optional[str], bytes]] = []

    async def handle(request: web.Request) -> web.Response:
        headers = request.headers
        seen.append(
            (headers.get("Content-Type"), headers.get("Content-Length"), await request.read())
        )
        return ok()

    batch = bytes(range(256)) * 8192  # 2 MiB

    async def scenario() -> None:
        async with serving(handle) as url, HttpTransport() as transport:
            endpoint = parse_module(ASYNC.replace("URL", f"{url}/fn")).endpoints[0]
            assert await transport.call(endpoint, "a/b", batch) == GOOD

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        asyncio.run(scenario())
    assert seen == [("application/octet-stream", str(len(batch)), batch)]


def test_okhttp_transport_shares_its_connections_between_function_types() -> None:
    peers: list[object] = []

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        return ok()

    async def scenario() -> None:
        async with serving(handle) as url, HttpTransport() as transport:
            endpoint = parse_module(OKHTTP.replace("URL", f"{url}/fn")).endpoints[0]
            for function_type in ("a/b", "a/c", "a/b"):
                assert await transport.call(endpoint, function_type, b"") == GOOD

    asyncio.run(scenario())
    assert len(peers) == 3 and peers[0] is not None
    assert peers[0] == peers[1] == peers[2]  # one kept-alive connection


def test_a_reply_s_traceresponse_is_handed_back_when_asked_for_and_there_is_one() -> None:
    traceresponse = f"00-{'1' * 32}-{'2' * 16}-01"

    async def scenario() -> list[dict[str, str]]:
        async def handle(request: web.Request) -> web.Response:
            response = ok()
            if request.query.get("traced"):
                response.headers[TRACERESPONSE] = traceresponse
            return response

        handed: list[dict[str, str]] = [{}, {}]
        async with serving(handle) as url, HttpTransport() as transport:
            for traced, reply_headers in [("", handed[0]), ("1", None), ("1", handed[1])]:
                at = f"{url}/fn?traced={traced}"
                endpoint = parse_module(OKHTTP.replace("URL", at)).endpoints[0]
                assert await transport.call(endpoint, "a/b", b"", None, reply_headers) == GOOD
        return handed

    assert asyncio.run(scenario()) == [{}, {TRACERESPONSE: traceresponse}]


def test_a_call_never_outlasts_its_budget() -> None:
    async def scenario() -> tuple[str, float]:
        start = time.monotonic()

        async def handle(request: web.Request) -> web.Response:
            if time.monotonic() - start > 0.8:  # far slower than the budget from then on
                await asyncio.sleep(3)
            return web.Response(status=500, text="down for now")

        async with serving(handle) as url, HttpTransport() as transport:
            endpoint = parse_module(ASYNC.replace("URL", f"{url}/fn")).endpoints[0]
            with pytest.raises(CallFailedError) as failed:
                await transport.call(endpoint, "a/b", b"")
            return failed.value.reason, time.monotonic() - start

    reason, took = asyncio.run(scenario())
    assert reason == "timed out, after HTTP 500: down for now (call timeout exhausted)"
    assert took < 2.5  # the budget is 1 s: the last attempt is cut, not waited for (3 s)


def test_the_async_transport_takes_octet_stream_in_any_case_as_the_runtime_does() -> None:
    """Netty's ``containsValue(CONTENT_TYPE, APPLICATION_OCTET_STREAM, ignoreCase=true)``."""
    assert asyncio.run(call_with(lambda n: shouting(), ASYNC)) == (GOOD, 1)


def two_content_types(first: str, last: str) -> web.Response:
    response = web.Response(body=GOOD_REPLY, headers={"Content-Type": first})
    response.headers.add("Content-Type", last)
    return response


def test_the_async_transport_takes_octet_stream_among_comma_separated_values() -> None:
    listed = web.Response(
        body=GOOD_REPLY, headers={"Content-Type": "text/plain, application/octet-stream"}
    )
    assert asyncio.run(call_with(lambda n: listed, ASYNC)) == (GOOD, 1)


def test_okhttp_transport_reads_the_last_content_type_header() -> None:
    last = two_content_types("text/plain", "application/octet-stream")
    assert asyncio.run(call_with(lambda n: last, OKHTTP)) == (GOOD, 1)
    first = two_content_types("application/octet-stream", "text/plain")
    reply, requests = asyncio.run(call_with(lambda n: first, OKHTTP))
    assert isinstance(reply, str) and "Content-Type" in reply and requests == 1


def shouting() -> web.Response:
    return web.Response(body=GOOD_REPLY, headers={"Content-Type": "Application/Octet-Stream"})


@pytest.mark.parametrize(
    "bad",
    [
        lambda n: shouting(),
        lambda n: web.Response(body=b"\xff\xff\xff", content_type="application/octet-stream"),
    ],
    ids=["content type not exactly", "not a FromFunction"],
)
def test_okhttp_transport_fails_at_once_on_a_reply_it_cannot_read(bad: Responder) -> None:
    """OkHttp's client checks a 2xx reply after its retries: a wrong one fails the call."""
    reply, requests = asyncio.run(call_with(bad, OKHTTP))
    assert isinstance(reply, str) and requests == 1


POOLED = """
kind: io.statefun.endpoints.v2/http
spec:
  functions: a/*
  urlPathTemplate: URL
  transport: {call: 5s, connect: CONNECT, pool_size: 1}
"""


async def overlapping(calls: list[str], connect: str = "5s", hold: float = 0.3
                      ) -> tuple[int, list[tuple[str, int, str]]]:  # fmt: skip
    """``calls`` (function types) at once to a server that holds each request ``hold`` s: the
    most requests the server had at one time, and the retries reported."""
    busy = most = 0
    retries: list[tuple[str, int, str]] = []

    async def handle(request: web.Request) -> web.Response:
        nonlocal busy, most
        busy += 1
        most = max(most, busy)
        await asyncio.sleep(hold)
        busy -= 1
        return ok()

    async with serving(handle, "/fn/{name}") as url:
        yaml = POOLED.replace("URL", f"{url}/fn/{{function.name}}").replace("CONNECT", connect)
        endpoint = parse_module(yaml).endpoints[0]
        async with HttpTransport(on_retry=lambda *retry: retries.append(retry)) as transport:
            replies = await asyncio.gather(*(transport.call(endpoint, t, b"") for t in calls))
    assert replies == [GOOD] * len(calls)
    return most, retries


def test_the_async_transport_holds_pool_size_connections_to_each_function_type() -> None:
    """As the runtime's Netty pool (one per function type): with ``pool_size: 1`` a second
    call to the same type waits for the first one's connection; another type has its own."""
    assert asyncio.run(overlapping(["a/b", "a/b", "a/b"])) == (1, [])
    assert asyncio.run(overlapping(["a/b", "a/c"])) == (2, [])


def test_closing_the_transport_closes_its_sessions() -> None:
    async def scenario() -> None:
        async with serving(lambda request: asyncio.sleep(0, ok())) as url:
            endpoint = parse_module(ASYNC.replace("URL", f"{url}/fn")).endpoints[0]
            transport = HttpTransport()
            assert await transport.call(endpoint, "a/b", b"") == GOOD
            await transport.close()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(scenario())
        gc.collect()
    assert not [w for w in caught if "Unclosed" in str(w.message)]


def test_waiting_for_a_free_connection_counts_against_connect_and_is_retried() -> None:
    """A call that waits longer than ``connect`` for a connection of the pool fails that
    attempt (as the runtime's acquire timeout), and is retried within its ``call`` budget."""
    most, retries = asyncio.run(overlapping(["a/b", "a/b"], connect="100ms", hold=0.5))
    assert most == 1
    assert retries, "the second call waited 500 ms for the connection, 100 ms allowed"
    url, attempt, reason = retries[0]
    assert (url.rsplit("/", 1)[1], attempt) == ("b", 1)
    assert reason.startswith("timed out: Connection timeout to host"), reason


def test_okhttp_transport_has_no_pool_limit() -> None:
    """OkHttp's pool (the runtime's ``newClient``) limits no function type's calls: ``pool_size``
    is not an OkHttp property."""

    async def scenario() -> int:
        busy = most = 0

        async def handle(request: web.Request) -> web.Response:
            nonlocal busy, most
            busy += 1
            most = max(most, busy)
            await asyncio.sleep(0.3)
            busy -= 1
            return ok()

        async with serving(handle) as url, HttpTransport() as transport:
            endpoint = parse_module(OKHTTP.replace("URL", f"{url}/fn")).endpoints[0]
            await asyncio.gather(*(transport.call(endpoint, "a/b", b"") for _ in range(3)))
        return most

    assert asyncio.run(scenario()) == 3


def test_okhttp_transport_has_no_pool_limit_over_a_unix_socket_either(tmp_path: Path) -> None:
    """More calls at once than aiohttp's default connection limit (100) all reach the server."""

    async def scenario() -> int:
        busy = most = 0
        everyone = asyncio.Event()

        async def handle(request: web.Request) -> web.Response:
            nonlocal busy, most
            busy += 1
            most = max(most, busy)
            if busy == 101:
                everyone.set()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(everyone.wait(), 5)  # for ever when it is not a bug
            busy -= 1
            return ok()

        socket = tmp_path / "fn.sock"
        async with serving(handle, socket_path=socket) as url, HttpTransport() as transport:
            yaml = OKHTTP.replace("URL", f"{url}/fn").replace("1s", "10s")
            endpoint = parse_module(yaml).endpoints[0]
            calls = (transport.call(endpoint, "a/b", b"") for _ in range(101))
            assert await asyncio.gather(*calls) == [GOOD] * 101
        return most

    assert asyncio.run(scenario()) == 101


def call_after_pauses(pool_ttl: str, pauses: tuple[float, ...]) -> list[object]:
    """Call a server after each pause through one transport whose endpoint has ``pool_ttl``:
    the peer (the client's address and port: its connection) of each request."""
    peers: list[object] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        await request.read()
        peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        return ok()

    async def calls() -> None:
        async with serving(handle) as url, HttpTransport() as transport:
            module = parse_module(
                "kind: io.statefun.endpoints.v2/http\n"
                f"spec: {{functions: a/*, urlPathTemplate: {url}/fn, transport: "
                f"{{pool_ttl: {pool_ttl}}}}}\n"
            )
            for pause in pauses:
                await asyncio.sleep(pause)
                assert await transport.call(module.endpoints[0], "a/b", b"") == GOOD

    asyncio.run(calls())
    return peers


@pytest.mark.parametrize(("pool_ttl", "connections"), [("1s", [1, 1, 2, 2]), ("0", [1, 1, 1, 1])])
def test_a_connection_older_than_pool_ttl_starts_no_other_call(
    pool_ttl: str, connections: list[int]
) -> None:
    """As the runtime's pool: a connection past its time to live starts no other call; 0
    keeps connections for ever."""
    peers = call_after_pauses(pool_ttl, (0, 0.1, 1.1, 0))
    numbered = {peer: n for n, peer in enumerate(dict.fromkeys(peers), 1)}
    assert [numbered[peer] for peer in peers] == connections


def test_a_connection_past_pool_ttl_is_closed_not_left_to_the_garbage_collector() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        peers = call_after_pauses("100ms", (0, 0.2, 0))
    assert len(set(peers)) == 2
    unclosed = [w for w in caught if "Unclosed connection" in str(w.message)]
    assert unclosed == []


def test_an_https_unix_url_speaks_plain_http_over_its_socket(tmp_path: Path) -> None:
    """The runtime's OkHttp client calls http://unused/... over the socket of an https+unix URL
    as of an http+unix one (DefaultHttpRequestReplyClientFactory): no TLS on a local socket
    (seen in the e2e kit: Apache StateFun 3.3 sent plain HTTP to an https+unix endpoint)."""

    async def scenario() -> Message | str:
        async def handle(request: web.Request) -> web.Response:
            return ok()

        socket = tmp_path / "fn.sock"
        async with serving(handle, socket_path=socket), HttpTransport() as transport:
            module = parse_module(f"""
kind: io.statefun.endpoints.v1/http
spec:
  functions: a/*
  urlPathTemplate: "https+unix://{socket}/statefun/{{function.name}}"
  timeouts: {{call: 2s, connect: 1s, read: 1s, write: 1s}}
""")
            try:
                return await transport.call(module.endpoints[0], "a/greeter", b"")
            except CallFailedError as error:
                return str(error)

    assert asyncio.run(scenario()) == GOOD


@pytest.mark.parametrize("host", ["", "localhost", "fns.example"])
def test_a_unix_socket_path_is_percent_decoded_and_its_host_ignored(
    tmp_path: Path, host: str
) -> None:
    """The runtime's UnixDomainHttpEndpoint takes the socket file from the URI's getPath():
    decoded, without the host. A socket in a folder with a space, written ``%20`` (a space as
    it is fails the runtime's URI.create), with or without a host, is called on that file."""

    async def scenario() -> tuple[Message | str, list[str]]:
        targets: list[str] = []

        async def handle(request: web.Request) -> web.Response:
            targets.append(request.raw_path)
            return ok()

        socket = tmp_path / "my fns" / "fn.sock"
        socket.parent.mkdir()
        written = str(socket).replace(" ", "%20")
        async with serving(handle, socket_path=socket), HttpTransport() as transport:
            module = parse_module(f"""
kind: io.statefun.endpoints.v2/http
spec:
  functions: a/*
  urlPathTemplate: "HTTP+UNIX://{host}{written}/statefun"
  transport:
    type: io.statefun.transports.v1/okhttp
    timeouts: {{call: 2s, connect: 1s, read: 1s, write: 1s}}
""")
            try:
                return await transport.call(module.endpoints[0], "a/greeter", b""), targets
            except CallFailedError as error:
                return str(error), targets

    assert asyncio.run(scenario()) == (GOOD, ["/%2Fstatefun"])
