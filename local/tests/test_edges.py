"""The runtime's HTTP side and CLI at their edges: what another site's page, a hostile
typename or id, malformed input, a client that leaves or a closed pipe can do (real HTTP,
real SQLite files, real processes)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import aiohttp
import pytest
from aiohttp import web
from statefun_local import Endpoint, LocalRuntime, make_app, parse_module
from statefun_local.cli import main
from statefun_local.guard import guard_middleware, typename_problem
from statefun_local.store import SqliteStore

from statefun_core import (
    CONTENT_TYPE,
    Context,
    Message,
    RequestReplyHandler,
    StatefulFunctions,
    error_response,
    message_builder,
)
from statefun_core.engine import Address, EgressRecord, TypedValue

from .conftest import FunctionServer, kafka_ingress, module_yaml, run, serving
from .test_runtime import greeter_functions
from .test_server_and_cli import echo_functions, serve_runtime
from .test_web_page import serve_runtime_app

JSON = {"Content-Type": "application/json"}
BODY = b'{"type": "string", "value": "Ann"}'


# --- requests another site could make the browser send ---------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        # DNS rebinding: another site's name for 127.0.0.1
        ("GET", "/api/status", {"Host": "rebound.test:8090"}, 403),
        ("GET", "/", {"Host": "rebound.test"}, 403),
        ("POST", "/ingress/com.example/echo/x", {**JSON, "Host": "rebound.test:80"}, 403),
        ("GET", "/api/status", {"Host": "localhost:8090"}, 200),
        ("GET", "/api/status", {"Host": "127.0.0.1:1"}, 200),
        ("GET", "/api/status", {"Host": "[::1]:8090"}, 200),
        # another origin, by Origin or Sec-Fetch-Site
        ("POST", "/ingress/com.example/echo/x", {**JSON, "Origin": "http://evil.test"}, 403),
        ("POST", "/ingress/com.example/echo/x", {**JSON, "Origin": "null"}, 403),
        ("POST", "/ingress/com.example/echo/x", {**JSON, "Origin": "http://127.0.0.1:1"}, 403),
        ("POST", "/ingress/com.example/echo/x", {**JSON, "Sec-Fetch-Site": "cross-site"}, 403),
        ("POST", "/ingress/com.example/echo/x", {**JSON, "Sec-Fetch-Site": "same-site"}, 403),
        ("POST", "/records/com.example/names?topic=names&key=x",
         {"Content-Type": "application/octet-stream", "Sec-Fetch-Site": "cross-site"}, 403),
        ("POST", "/api/stuck/skip/com.example/echo/x", {**JSON, "Origin": "http://evil.test"},
         403),
        ("POST", "/api/stuck/dead-letter/com.example/echo/x",
         {**JSON, "Sec-Fetch-Site": "cross-site"}, 403),
        # what a page may send anywhere without asking first
        ("POST", "/ingress/com.example/echo/x?typename=com.example/Raw",
         {"Content-Type": "text/plain"}, 415),
        ("POST", "/ingress/com.example/echo/x?typename=com.example/Raw",
         {"Content-Type": "application/x-www-form-urlencoded"}, 415),
        ("POST", "/ingress/com.example/echo/x?typename=com.example/Raw",
         {"Content-Type": "multipart/form-data; boundary=x"}, 415),
        ("POST", "/ingress/com.example/echo/x?typename=com.example/Raw", {}, 415),
        # and what the browser sends for a page: <a ping>, a CSP report to the page's report-uri
        ("POST", "/ingress/com.example/echo/x?typename=com.example/Raw",
         {"Content-Type": "text/ping", "Ping-From": "http://evil.test/"}, 415),
        ("POST", "/ingress/com.example/echo/x?typename=com.example/Raw",
         {"Content-Type": "application/csp-report"}, 415),
        ("POST", "/ingress/com.example/echo/x?typename=com.example/Raw",
         {"Content-Type": "application/reports+json"}, 415),
        ("POST", "/records/com.example/names?topic=names&key=x", {"Content-Type": "text/plain"},
         415),
        ("POST", "/api/stuck/retry/com.example/echo/x", {"Content-Type": "text/plain"}, 415),
        ("POST", "/api/stuck/skip/com.example/echo/x", {}, 415),
        # the runtime's own page (its fetches and its forms), and tools outside a browser
        ("POST", "/ingress/com.example/echo/x?typename=com.example/Raw",
         {"Content-Type": "text/plain", "Origin": "http://{host}"}, 202),
        ("POST", "/ingress/com.example/echo/x?typename=com.example/Raw",
         {"Content-Type": "application/x-www-form-urlencoded", "Sec-Fetch-Site": "same-origin"},
         202),
        ("POST", "/ingress/com.example/echo/x",
         {**JSON, "Origin": "http://{host}", "Sec-Fetch-Site": "same-origin"}, 202),
        ("POST", "/ingress/com.example/echo/x", {**JSON, "Sec-Fetch-Site": "none"}, 202),
        ("POST", "/ingress/com.example/echo/x?typename=com.example/Raw",
         {"Content-Type": "application/octet-stream"}, 202),
        ("POST", "/records/com.example/names?topic=names&key=x",
         {"Content-Type": "application/octet-stream"}, 202),
        ("POST", "/api/stuck/skip/com.example/echo/x", JSON, 404),  # passed; not stuck
    ],
)  # fmt: skip
def test_requests_another_site_could_make_are_refused(
    tmp_path: Path, method: str, path: str, headers: dict[str, str], status: int
) -> None:
    extra = kafka_ingress("com.example/Raw", "com.example/echo")

    async def scenario() -> None:
        async with FunctionServer(echo_functions()) as server:
            module = parse_module(module_yaml(server.url, extra=extra))
            async with LocalRuntime(module, tmp_path / "db.sqlite", offline=True) as runtime:
                runner = web.AppRunner(make_app(runtime))
                await runner.setup()
                site = web.TCPSite(runner, "127.0.0.1", 0)
                await site.start()
                port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
                sent = {
                    key: value.format(host=f"127.0.0.1:{port}") for key, value in headers.items()
                }
                try:
                    async with (
                        aiohttp.ClientSession() as session,
                        session.request(
                            method,
                            f"http://127.0.0.1:{port}{path}",
                            headers=sent,
                            data=BODY if method == "POST" else None,
                            skip_auto_headers=["Content-Type"],
                        ) as response,
                    ):
                        text = await response.text()
                        assert response.status == status, text
                    queued = sum(runtime.store.queue_depths().values()) + runtime.delivered
                    assert queued == (1 if status == 202 else 0)
                finally:
                    await runner.cleanup()

    run(scenario())


# --- waiting for egress records ----------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    ["wait=nan", "wait=inf", "wait=-inf", "wait=-1", "wait=1e999", "wait=x",
     f"after={2**63}", f"after={10**400}", "after=-1", "after=1.5", "after=nan"],
)  # fmt: skip
def test_egress_numbers_are_finite_and_bounded(tmp_path: Path, query: str) -> None:
    async def scenario() -> None:
        async with serving(echo_functions(), tmp_path / "db.sqlite") as (_, runtime):
            runner, url = await serve_runtime(runtime)
            try:
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(
                        f"{url}/api/egress?{query}", timeout=aiohttp.ClientTimeout(total=30)
                    ) as response,
                ):
                    assert response.status == 400
                    assert "must be" in await response.text()
                    async with session.get(f"{url}/api/egress?after={2**63 - 1}&wait=0") as ok:
                        assert (await ok.json()) == {"records": []}
            finally:
                await runner.cleanup()

    run(scenario())


def _handlers_running() -> int:
    """aiohttp's request handlers (one task per connection) still running in this loop."""
    return sum(
        1 for task in asyncio.all_tasks() if task.get_coro().__qualname__ == "RequestHandler.start"
    )  # type: ignore[union-attr]


def test_a_long_poll_ends_when_its_client_leaves(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serving(echo_functions(), tmp_path / "db.sqlite") as (_, runtime):
            runner, url = await serve_runtime(runtime)
            try:
                host, port = url.removeprefix("http://").split(":")
                _, writer = await asyncio.open_connection(host, int(port))
                writer.write(f"GET /api/egress?wait=60 HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
                await writer.drain()
                await _until(lambda: _handlers_running() == 1)
                writer.close()
                await _until(lambda: _handlers_running() == 0, timeout=20)
            finally:
                await runner.cleanup()

    run(scenario())


async def _until(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        await asyncio.sleep(0.05)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def _cli_runtime(tmp_path: Path, *options: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``statefun-local run`` in its own process, stopped by its PID; its log shown on failure."""
    module = tmp_path / "module.yaml"
    module.write_text(module_yaml("http://127.0.0.1:9/statefun"))
    port = _free_port()
    log = (tmp_path / "runtime.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "statefun_local", "run", str(module), "--offline", "--port",
         str(port), "--db", str(tmp_path / "db.sqlite"), *options],
        stdout=log, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while "web page and ingress" not in (tmp_path / "runtime.log").read_text():
            assert process.poll() is None and time.monotonic() < deadline, "did not start"
            time.sleep(0.05)
        yield process, url
    except BaseException:
        print((tmp_path / "runtime.log").read_text(), file=sys.stderr)
        raise
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        log.close()


def test_sigterm_stops_the_runtime_while_a_client_waits(tmp_path: Path) -> None:
    async def wait_and_stop(process: subprocess.Popen[str], url: str) -> Optional[str]:
        async with aiohttp.ClientSession() as session:
            poll = asyncio.ensure_future(session.get(f"{url}/api/egress?wait=60"))
            await asyncio.sleep(0.5)  # not for timing: only to let the poll reach the server
            assert not poll.done()
            process.send_signal(signal.SIGTERM)
            # it stops well before the 60 s wait would end
            await asyncio.to_thread(process.wait, 20)
            with contextlib.suppress(aiohttp.ClientError):
                response = await poll
                return str((await response.json())["records"])
            return None

    with _cli_runtime(tmp_path) as (process, url):
        run(wait_and_stop(process, url))
        assert process.returncode == 0
    assert "stopping" in (tmp_path / "runtime.log").read_text()


# --- typenames and ids -------------------------------------------------------------------------


def test_a_function_name_goes_into_the_url_percent_encoded() -> None:
    endpoint = Endpoint(
        functions="com.example/*", url_path_template="http://fns:8000/statefun/{function.name}"
    )
    assert endpoint.url_for("com.example/greeter") == "http://fns:8000/statefun/greeter"
    assert endpoint.url_for("com.example/a?b#c d%") == "http://fns:8000/statefun/a%3Fb%23c%20d%25"
    assert endpoint.url_for("com.example/../admin") == "http://fns:8000/statefun/..%2Fadmin"
    for name in (".", ".."):
        with pytest.raises(ValueError, match="not function names"):
            endpoint.url_for(f"com.example/{name}")


def test_typenames_and_ids_do_not_steer_the_call_or_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Ingress refuses typenames that would change the URL; what a function sends to such a
    typename goes to its percent-encoded URL, or nowhere; log lines stay one line each."""
    functions = StatefulFunctions()

    @functions.bind("com.example/router")
    def router(context: Context, message: Message) -> None:
        context.send(message_builder(message.as_string(), "id\nforged line", str_value="x"))

    handler = RequestReplyHandler(functions)
    paths: list[str] = []

    async def serve(request: web.Request) -> web.Response:
        paths.append(request.raw_path)
        try:
            reply = await handler.handle_async(await request.read())
        except Exception as error:
            status, text = error_response(error)
            return web.Response(status=status, text=text)
        return web.Response(body=reply, content_type=CONTENT_TYPE)

    async def scenario() -> list[str]:
        app = web.Application()
        app.router.add_route("*", "/fns/{name}", serve)
        functions_runner, functions_url = await serve_runtime_app(app)
        module = parse_module(module_yaml(f"{functions_url}/fns/{{function.name}}", call="100ms"))
        refused = []
        try:
            async with LocalRuntime(
                module, tmp_path / "db.sqlite", offline=True, failure_pause=0.05
            ) as runtime:
                runner, url = await serve_runtime(runtime)
                try:
                    async with aiohttp.ClientSession() as session:
                        for typename in ["..%2F..%2Fadmin", "%2E%2E", "a%3Fb", "a%23b", "a%0Ab"]:
                            async with session.post(
                                f"{url}/ingress/com.example/{typename}/x",
                                json={"type": "string", "value": "x"},
                            ) as r:
                                refused.append(f"{r.status} {await r.text()}")
                        for target in ["com.example/..", "com.example/a?b#c", "com.example/a\nb"]:
                            async with session.post(
                                f"{url}/ingress/com.example/router/r",
                                json={"type": "string", "value": target},
                            ) as response:
                                assert response.status == 202
                    await _until(lambda: {"/fns/a%3Fb%23c", "/fns/a%0Ab"} <= set(paths))
                    await _until(
                        lambda: any("not function names" in f.error for f in runtime.failures)
                    )
                finally:
                    await runner.cleanup()
        finally:
            await functions_runner.cleanup()
        return refused

    with caplog.at_level(logging.INFO, logger="statefun_local"):
        refused = run(scenario())
    # 400, or 404 where the path itself normalises to another route ("%2E%2E")
    assert all(answer.startswith(("400 ", "404 ")) for answer in refused), refused
    assert set(paths) == {"/fns/router", "/fns/a%3Fb%23c", "/fns/a%0Ab"}
    messages = [record.getMessage() for record in caplog.records]
    assert any("'com.example/..': '.' and '..' are not function names" in m for m in messages)
    assert not [message for message in messages if "\n" in message]


def test_status_shows_a_function_type_no_url_can_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A function sends to ``com.example/..``: its message waits, failing, and the status (the
    page's only source) shows the type with why it has no URL; the log says so once, with no
    traceback of each attempt."""
    functions = StatefulFunctions()

    @functions.bind("com.example/router")
    def router(context: Context, message: Message) -> None:
        context.send(message_builder("com.example/..", "x", str_value="hi"))

    async def scenario() -> dict[str, Any]:
        async with serving(functions, tmp_path / "db.sqlite") as (_, runtime):
            runner, url = await serve_runtime(runtime)
            try:
                await runtime.send(
                    Address("com.example/router", "r"),
                    TypedValue("io.statefun.types/string", b"\n\x02go"),
                )
                await _until(lambda: any("not function names" in f.error for f in runtime.failures))
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(f"{url}/api/status") as response,
                ):
                    assert response.status == 200, await response.text()
                    status = await response.json()
            finally:
                await runner.cleanup()
        return {function["typename"]: function for function in status["functions"]}

    functions_shown = run(scenario())
    assert [record.exc_info for record in caplog.records if record.exc_info] == []
    said = [
        record.getMessage()
        for record in caplog.records
        if "not function names" in record.getMessage()
    ]
    assert len(said) == 1, said
    assert functions_shown["com.example/.."]["endpoint"] is None
    assert functions_shown["com.example/.."]["endpoint_problem"] == (
        "'com.example/..': '.' and '..' are not function names"
    )
    assert functions_shown["com.example/.."]["queued"] == 1
    assert functions_shown["com.example/router"]["endpoint"].endswith("/statefun")
    assert functions_shown["com.example/router"]["endpoint_problem"] is None


# --- malformed ingress input -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("com.example/echo/x", b'{"type": "string", "value": "\\ud800"}'),
        ("com.example/echo/x", b'{"type": "com.example/J", "value": ["ok", "\\udfff"]}'),
        ("com.example/echo/x", b'{"type": "com.example/\\ud800", "value": 1}'),
        ("com.example/echo/x", b'{"type": "com.example/J", "value": ' + b"[" * 200_000
         + b"]" * 200_000 + b"}"),
        ("com.example/echo/x", b"[" * 200_000),
        ("com.example/echo/x", b'{"type": "double", "value": 1' + b"0" * 400 + b"}"),
        ("com.example/echo/x", b'{"type": "long", "value": 1' + b"0" * 30 + b"}"),
        ("com.example/echo/x", b'{"type": "com.example/J", "value": 1' + b"0" * 5000 + b"}"),
        ("com.example/echo/x", b'{"type": "com.example/B", "base64": 12}'),
        ("com.example/echo/x", b'{"type": ["string"], "value": "x"}'),
        ("com.example/echo/x", b"\xff\xfe"),
    ],
)  # fmt: skip
def test_bad_ingress_input_answers_400(tmp_path: Path, path: str, body: bytes) -> None:
    async def scenario() -> None:
        async with serving(echo_functions(), tmp_path / "db.sqlite") as (_, runtime):
            runner, url = await serve_runtime(runtime)
            try:
                async with aiohttp.ClientSession() as session:
                    async with session.post(
                        f"{url}/ingress/{path}", data=body, headers=JSON
                    ) as response:
                        assert response.status == 400, await response.text()
                    async with session.get(f"{url}/api/state/{path}") as response:
                        assert response.status in (200, 400)
                    # and the runtime serves on
                    async with session.post(
                        f"{url}/ingress/com.example/echo/y", data=BODY, headers=JSON
                    ) as response:
                        assert response.status == 202
            finally:
                await runner.cleanup()

    run(scenario())


# --- the CLI and the database files ------------------------------------------------------------


def test_send_percent_encodes_the_address(tmp_path: Path) -> None:
    odd_id = "a b/c?d#e%41&f"

    async def scenario() -> dict[str, Any]:
        async with serving(greeter_functions(), tmp_path / "db.sqlite") as (_, runtime):
            runner, url = await serve_runtime(runtime)
            try:
                code = await asyncio.to_thread(
                    main, ["send", f"com.example/greeter/{odd_id}", "--string", "Ann", "--url",
                           url])  # fmt: skip
                assert code == 0
                await runtime.wait_until_idle()
                return runtime.inspect(Address("com.example/greeter", odd_id))
            finally:
                await runner.cleanup()

    state = run(scenario())
    assert state["state"]["seen_count"]["value"] == 1


def _egress_database(path: Path, count: int) -> None:
    store = SqliteStore.open(path)
    with store.transaction():
        for n in range(count):
            store.egress_append(
                EgressRecord(
                    "com.example/out", TypedValue("io.statefun.types/string", b"\n\x01" + b"x")
                )
            )
            del n
    store.close()


def test_egress_prints_every_record_and_stops_quietly_when_its_reader_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "db.sqlite"
    _egress_database(db, 2500)
    assert main(["egress", "--db", str(db)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2500
    assert lines[-1] == "#2500 com.example/out: x"

    # ``statefun-local egress | head -1``
    process = subprocess.Popen(
        [sys.executable, "-m", "statefun_local", "egress", "--db", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        assert process.stdout.readline() == b"#1 com.example/out: x\n"
        process.stdout.close()
        with process.stderr:
            errors = process.stderr.read().decode()
        assert process.wait(timeout=60) == 0, errors
    finally:
        process.kill()
        process.wait()
    assert errors == ""


def test_the_database_files_are_private(tmp_path: Path) -> None:
    """And so is the file of --egress-jsonl, which holds the same egress records: it was
    created readable by everyone (the umask's 0644)."""
    db = tmp_path / "db.sqlite"
    previous = os.umask(0o022)
    try:

        async def scenario() -> None:
            jsonl = tmp_path / "egress.jsonl"
            async with serving(greeter_functions(), db, egress_jsonl=jsonl) as (_, runtime):
                await runtime.send(
                    Address("com.example/greeter", "Ann"),
                    TypedValue("io.statefun.types/string", b"\n\x03Ann"),
                )
                await runtime.wait_until_idle()
                files = {
                    path.name: stat.S_IMODE(path.stat().st_mode) for path in tmp_path.iterdir()
                }
                assert files == {
                    "db.sqlite": 0o600,
                    "db.sqlite-wal": 0o600,
                    "db.sqlite-shm": 0o600,
                    "egress.jsonl": 0o600,
                }

        run(scenario())
    finally:
        os.umask(previous)


def test_allow_host_admits_a_name_and_the_page_browses_addresses_a_page_at_a_time(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with serving(greeter_functions(), tmp_path / "db.sqlite") as (_, runtime):
            for name in ["Cy", "Ann", "Bob"]:
                await runtime.send(
                    Address("com.example/greeter", name),
                    TypedValue("io.statefun.types/string", b"\n\x02Jo"),
                )
            await runtime.wait_until_idle()
            runner = web.AppRunner(make_app(runtime, allowed_hosts=["fns.internal"]))
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            url = f"http://127.0.0.1:{port}/api/addresses/com.example/greeter"
            try:
                async with aiohttp.ClientSession() as session:
                    pages = []
                    after = ""
                    while after is not None:
                        async with session.get(
                            url,
                            params={"limit": "2", "after": after},
                            headers={"Host": f"fns.internal:{port}"},
                        ) as r:
                            assert r.status == 200, await r.text()
                            page = await r.json()
                        pages.append(page["ids"])
                        after = page["next"]
                    async with session.get(url, headers={"Host": "other.internal"}) as r:
                        assert r.status == 403
            finally:
                await runner.cleanup()
        assert pages == [["Ann", "Bob"], ["Cy"]]

    run(scenario())


@pytest.mark.parametrize(
    ("host", "status"),
    [("localhost:8090", 200), ("localhost:evil", 403), ("127.0.0.1", 200), ("[::1]", 200)],
)
def test_host_is_a_name_and_a_numeric_port(host: str, status: int) -> None:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def scenario() -> int:
        app = web.Application(middlewares=[guard_middleware()])
        app.router.add_get("/", ok)
        runner, url = await serve_runtime_app(app)
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{url}/", headers={"Host": host}) as response,
            ):
                return response.status
        finally:
            await runner.cleanup()

    assert run(scenario()) == status


@pytest.mark.parametrize(
    ("typename", "problem"),
    [
        ("com.example/fn", None),
        ("noslash", "is not a typename 'namespace/name'"),
        ("com.example/", "is not a typename 'namespace/name'"),
        ("/fn", "is not a typename 'namespace/name'"),
        ("a//b", "is not a typename 'namespace/name'"),
        ("com.example/..", "'.' and '..' are not names"),
        ("./fn", "'.' and '..' are not names"),
        ("com.example/a?b", "holds no '?', '#' or control characters"),
        ("com.example/a#b", "holds no '?', '#' or control characters"),
        ("com.example/a\u2028b", "holds no '?', '#' or control characters"),
    ],
)
def test_typename_problem(typename: str, problem: Optional[str]) -> None:
    found = typename_problem(typename)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


# --- found unchecked by mutation testing of guard.py ------------------------------------------


async def _guarded(send: Any) -> Any:
    """``send(url)`` against a bare app behind the guard, answering GET and POST with ok."""

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(middlewares=[guard_middleware()])
    app.router.add_route("*", "/", ok)
    runner, url = await serve_runtime_app(app)
    try:
        return await send(url)
    finally:
        await runner.cleanup()


def test_a_request_without_a_host_header_is_served() -> None:
    """HTTP/1.0 needs no Host: a client outside a browser that sends none is let in (a page in
    a browser always sends one)."""

    async def send(url: str) -> bytes:
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET / HTTP/1.0\r\n\r\n")
        answer = await reader.read()
        writer.close()
        return answer

    answer = run(_guarded(send))
    assert answer.startswith(b"HTTP/1.0 200 ") and answer.endswith(b"\r\n\r\nok"), answer


@pytest.mark.parametrize(
    ("headers", "says"),
    [({}, "Content-Type (none) refused"),
     ({"Content-Type": "Text/Plain; charset=utf-8"}, "Content-Type text/plain refused")],
)  # fmt: skip
def test_a_refused_content_type_is_named(headers: dict[str, str], says: str) -> None:
    async def send(url: str) -> tuple[int, str]:
        async with aiohttp.ClientSession(skip_auto_headers=["Content-Type"]) as session, \
                session.post(f"{url}/", headers=headers) as response:  # fmt: skip
            return response.status, await response.text()

    assert run(_guarded(send)) == (
        415,
        f"{says}: send application/json, or application/octet-stream for raw bytes\n",
    )


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS"])
def test_head_and_options_change_nothing_and_are_answered(method: str) -> None:
    """Like GET, they need no Content-Type and may come from anywhere (curl -I)."""

    async def send(url: str) -> int:
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                method, f"{url}/", headers={"Origin": "http://elsewhere.test"}
            ) as response,
        ):
            return response.status

    assert run(_guarded(send)) == 200


def test_what_typename_problem_says() -> None:
    assert typename_problem("noslash") == "'noslash' is not a typename 'namespace/name'"
    assert typename_problem("a/..") == "'a/..': '.' and '..' are not names"
    assert typename_problem("a/b\n") == (
        "'a/b\\\\n': a typename holds no '?', '#' or control characters"
    )


@pytest.mark.parametrize(
    ("headers", "says"),
    [({"Host": "evil.test"}, "Host 'evil.test' is not this runtime's: use its address, or "
                             "localhost (statefun-local run --allow-host NAME allows a name)\n"),
     ({"Origin": "http://evil.test"}, "cross-origin request from 'http://evil.test' refused\n"),
     ({"Sec-Fetch-Site": "cross-site"}, "cross-site request refused (Sec-Fetch-Site)\n")],
)  # fmt: skip
def test_what_a_403_says(headers: dict[str, str], says: str) -> None:
    async def send(url: str) -> tuple[int, str]:
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{url}/", json={}, headers=headers) as response,
        ):
            return response.status, await response.text()

    assert run(_guarded(send)) == (403, says)
