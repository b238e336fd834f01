"""The runtime's HTTP side (ingress, inspection, egress, web page) and the CLI, for real."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yarl
from aiohttp import web
from statefun_local import make_app, make_value
from statefun_local.cli import main
from statefun_local.store import SqliteStore

from statefun_core import (
    Context,
    IntType,
    Message,
    StatefulFunctions,
    StringType,
    ValueSpec,
    kafka_egress_message,
)
from statefun_core.engine import Address
from statefun_core.testing.endpoint import free_port

from .conftest import kafka_ingress, run, serving


def echo_functions() -> StatefulFunctions:
    """``com.example/echo`` sends every argument to the Kafka egress as it came."""
    functions = StatefulFunctions()

    @functions.bind("com.example/echo")
    def echo(context: Context, message: Message) -> None:
        typed = message.typed_value
        context.send_egress(
            kafka_egress_message(
                "com.example/out",
                topic=typed.typename,
                key=context.address.id,
                value=bytes(typed.value),
            )
        )

    return functions


async def serve_runtime(runtime: Any) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(make_app(runtime), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


def test_ingress_accepts_typed_values_and_egress_shows_them(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serving(echo_functions(), tmp_path / "db.sqlite") as (_, runtime):
            runner, url = await serve_runtime(runtime)
            try:
                async with aiohttp.ClientSession() as session:
                    bodies = [
                        {"type": "string", "value": "Ann"},
                        {"type": "int", "value": 7},
                        {"type": "io.statefun.types/long", "value": "8"},
                        {"type": "com.example/User", "value": {"name": "Ann"}},
                        {"type": "com.example/Raw", "base64": base64.b64encode(b"\0\1").decode()},
                    ]
                    for body in bodies:
                        async with session.post(
                            f"{url}/ingress/com.example/echo/x", json=body
                        ) as response:
                            assert response.status == 202, await response.text()
                    async with session.post(
                        f"{url}/ingress/com.example/echo/x?typename=com.example/Bytes",
                        data=b"raw",
                        headers={"Content-Type": "application/octet-stream"},
                    ) as response:
                        assert response.status == 202
                    async with session.get(f"{url}/api/egress?after=0&wait=5") as response:
                        records = (await response.json())["records"]
                    while len(records) < 6:
                        async with session.get(
                            f"{url}/api/egress?after={records[-1]['seq']}&wait=5"
                        ) as response:
                            records += (await response.json())["records"]
            finally:
                await runner.cleanup()
        kafka = [r["record"]["kafka"] for r in records]
        assert [(k["topic"], k["key"]) for k in kafka] == [
            ("io.statefun.types/string", "x"),
            ("io.statefun.types/int", "x"),
            ("io.statefun.types/long", "x"),
            ("com.example/User", "x"),
            ("com.example/Raw", "x"),
            ("com.example/Bytes", "x"),
        ]
        assert kafka[3]["value"] == '{"name": "Ann"}'
        assert kafka[4]["value"] == {"base64": "AAE="}
        assert kafka[5]["value"] == "raw"

    run(scenario())


@pytest.mark.parametrize(
    ("path", "body", "error"),
    [
        ("com.other/fn/x", {"type": "string", "value": "a"}, "no endpoint"),
        ("com.example/echo/x", {"type": "int", "value": "seven"}, "not a valid"),
        ("com.example/echo/x", {"type": "int", "value": 2**40}, "use long"),
        ("com.example/echo/x", {"type": "nonsense", "value": 1}, "unknown type"),
        ("com.example/echo/x", {"value": 1}, "expected"),
    ],
)
def test_ingress_rejects_bad_input(tmp_path: Path, path: str, body: Any, error: str) -> None:
    async def scenario() -> None:
        async with serving(echo_functions(), tmp_path / "db.sqlite") as (_, runtime):
            runner, url = await serve_runtime(runtime)
            try:
                async with (
                    aiohttp.ClientSession() as session,
                    session.post(f"{url}/ingress/{path}", json=body) as response,
                ):
                    assert response.status == 400
                    assert error in await response.text()
            finally:
                await runner.cleanup()

    run(scenario())


@pytest.mark.parametrize("path", ["com.example/echo", "com.example/echo/", "com.example"])
def test_an_ingress_path_without_an_id_says_what_an_address_is(tmp_path: Path, path: str) -> None:
    async def scenario() -> None:
        async with serving(echo_functions(), tmp_path / "db.sqlite") as (_, runtime):
            runner, url = await serve_runtime(runtime)
            try:
                async with (
                    aiohttp.ClientSession() as session,
                    session.post(
                        f"{url}/ingress/{path}", json={"type": "string", "value": "a"}
                    ) as response,
                ):
                    assert response.status == 404
                    assert await response.text() == (
                        f"/ingress/{path}: an address is /ingress/<namespace>/<type>/<id>\n"
                    )
            finally:
                await runner.cleanup()

    run(scenario())


def test_status_state_and_web_page(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serving(echo_functions(), tmp_path / "db.sqlite") as (_, runtime):
            runner, url = await serve_runtime(runtime)
            try:
                async with aiohttp.ClientSession() as session:
                    async with session.post(
                        f"{url}/ingress/com.example/echo/a/b",
                        json={"type": "string", "value": "hi"},
                    ) as response:
                        assert response.status == 202
                    await runtime.wait_until_idle()
                    async with session.get(f"{url}/api/status") as response:
                        status = await response.json()
                    async with session.get(f"{url}/api/state/com.example/echo/a/b") as response:
                        state = await response.json()
                    async with session.get(f"{url}/") as response:
                        page = await response.text()
            finally:
                await runner.cleanup()
        assert status["totals"]["delivered"] == 1
        assert status["totals"]["egress"] == 1
        [function] = [f for f in status["functions"] if f["typename"] == "com.example/echo"]
        assert function["endpoint"].endswith("/statefun")
        assert status["egress"][0]["record"]["kafka"]["key"] == "a/b"
        assert state["address"] == "com.example/echo/a/b"
        assert state["queued"] == [] and state["timers"] == []
        assert "api/status" in page and "<title>statefun-local</title>" in page

    run(scenario())


def test_cli_send_state_and_egress(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from .test_runtime import greeter_functions

    db = tmp_path / "db.sqlite"

    async def scenario() -> None:
        async with serving(greeter_functions(), db) as (_, runtime):
            runner, url = await serve_runtime(runtime)
            try:
                for _ in range(2):
                    code = await asyncio.to_thread(
                        main, ["send", "com.example/greeter/Ann", "--string", "Ann", "--url", url]
                    )
                    assert code == 0
                code = await asyncio.to_thread(
                    main, ["send", "com.other/fn/x", "--string", "Ann", "--url", url]
                )
                assert code == 1
                await runtime.wait_until_idle()
            finally:
                await runner.cleanup()

    run(scenario())
    out, err = capsys.readouterr()
    assert "sent io.statefun.types/string to com.example/greeter/Ann" in out
    assert "no endpoint in the module serves function type 'com.other/fn'" in err

    assert main(["state", "com.example/greeter/Ann", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "state seen_count: 2  [io.statefun.types/int]" in out
    assert "queued: 0 message(s)" in out

    assert main(["egress", "--db", str(db)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "#1 com.example/out: topic=greetings key=Ann value=Hello Ann for the 1th time!",
        "#2 com.example/out: topic=greetings key=Ann value=Hello Ann for the 2th time!",
    ] or [line.split(" ", 1)[1] for line in lines] == [
        "com.example/out: topic=greetings key=Ann value=Hello Ann for the 1th time!",
        "com.example/out: topic=greetings key=Ann value=Hello Ann for the 2th time!",
    ]
    assert main(["egress", "--db", str(db), "--json"]) == 0
    first = json.loads(capsys.readouterr().out.splitlines()[0])
    assert first["record"]["kafka"]["value"] == "Hello Ann for the 1th time!"


def test_an_id_with_a_line_break_is_taken_in_the_path_by_every_route(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An id may hold a line break (a Kafka key may): ``send`` puts it in the path, and
    ``/ingress``, ``/api/state`` and ``/api/stuck`` take it there (``%0A``), not a 404."""
    from .test_runtime import greeter_functions

    ann = Address("com.example/greeter", "Ann\nBo")

    async def scenario() -> list[tuple[int, str]]:
        async with serving(greeter_functions(), tmp_path / "db.sqlite") as (_, runtime):
            runner, url = await serve_runtime(runtime)
            try:
                argv = ["send", str(ann), "--string", "Ann", "--url", url]
                assert await asyncio.to_thread(main, argv) == 0
                await runtime.wait_until_idle()
                answers = []
                async with aiohttp.ClientSession() as session:
                    path = "com.example/greeter/Ann%0ABo"
                    for method, route in [("POST", "ingress"), ("GET", "api/state"),
                                          ("POST", "api/stuck/skip")]:  # fmt: skip
                        async with session.request(
                            method, yarl.URL(f"{url}/{route}/{path}", encoded=True),
                            json={"type": "string", "value": "Ann"},
                        ) as response:  # fmt: skip
                            answers.append((response.status, await response.text()))
                await runtime.wait_until_idle()
                assert runtime.inspect(ann)["state"]["seen_count"]["value"] == 2
                argv = ["skip", str(ann), "--url", url]
                assert await asyncio.to_thread(main, argv) == 1
            finally:
                await runner.cleanup()
        return answers

    (sent, shown, skipped) = run(scenario())
    out, err = capsys.readouterr()
    assert "sent io.statefun.types/string to com.example/greeter/Ann\\nBo" in out
    # the runtime's answer names the id: shown on one line
    assert err == (
        "statefun-local: com.example/greeter/Ann\\nBo is not stuck: no failing message to act on\n"
    )
    assert sent[0] == 202 and json.loads(sent[1])["target"] == str(ann)
    assert shown[0] == 200 and json.loads(shown[1])["address"] == str(ann)
    assert skipped[0] == 404 and skipped[1].startswith(f"{ann} is not stuck")


def test_an_address_copied_with_the_escapes_it_is_shown_with_is_told_what_they_stand_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An id with a control character (an escape sequence, ESC) is shown escaped, ``\\x1b``,
    so that it can not steer the terminal; given back so, it names another address, which has
    nothing: the CLI says what the escapes stand for. Given as it is, its state is shown."""
    from .test_runtime import greeter_functions

    db = tmp_path / "db.sqlite"
    ann = Address("com.example/greeter", "Ann\x1b[31m")

    async def scenario() -> None:
        async with serving(greeter_functions(), db) as (_, runtime):
            await runtime.send(ann, make_value("string", "Ann"))
            await runtime.wait_until_idle()

    run(scenario())
    assert main(["state", str(ann), "--db", str(db)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[:2] == [
        "com.example/greeter/Ann\\x1b[31m",
        "  state seen_count: 1  [io.statefun.types/int]",
    ]
    assert err == ""
    assert main(["state", "com.example/greeter/Ann\\x1b[31m", "--db", str(db)]) == 0
    out, err = capsys.readouterr()
    assert "  state seen_count: (no value)  [io.statefun.types/int]" in out  # another id's
    assert err.startswith(
        "statefun-local: com.example/greeter/Ann\\x1b[31m holds escapes as an address is shown "
        "(\\x1b, \\u202e), which stand for characters that can not be shown: give those "
        "characters (in bash, $'ns/type/a\\x1bb')"
    )


def test_after_a_restart_state_is_no_longer_declared_only_once_its_function_said_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The runtime forgets the specs when it starts: until the function is called again, its
    stored values are not yet known to be declared, not "no longer declared"; once called, a
    value it still declares has no note, one it stopped declaring is marked."""
    from statefun_core import ValueSpec

    from .test_runtime import greeter_functions

    db = tmp_path / "db.sqlite"
    ann = Address("com.example/greeter", "Ann")

    def notes() -> list[str]:
        assert main(["state", str(ann), "--db", str(db)]) == 0
        return [line for line in capsys.readouterr().out.splitlines() if "state " in line]

    async def scenario() -> None:
        async with serving(greeter_functions(), db) as (_, runtime):
            await runtime.send(ann, make_value("string", "Ann"))
            await runtime.wait_until_idle()
        async with serving(greeter_functions(), db) as (_, runtime):
            assert runtime.inspect(ann)["state"]["seen_count"]["declared"] is None
            assert await asyncio.to_thread(notes) == [
                "  state seen_count: 1  [io.statefun.types/int]"
                "  (its function has not answered since the runtime started)"
            ]
            await runtime.send(ann, make_value("string", "Ann"))
            await runtime.wait_until_idle()
            assert await asyncio.to_thread(notes) == [
                "  state seen_count: 2  [io.statefun.types/int]"
            ]
        # the greeter redeployed with another state: seen_count is no longer declared
        renamed = StatefulFunctions()

        @renamed.bind("com.example/greeter", specs=[ValueSpec("visits", IntType)])
        def greeter(context: Context, message: Message) -> None:
            context.storage.visits = 1

        async with serving(renamed, db) as (_, runtime):
            await runtime.send(ann, make_value("string", "Ann"))
            await runtime.wait_until_idle()
            assert await asyncio.to_thread(notes) == [
                "  state seen_count: 2  [io.statefun.types/int]  (no longer declared)",
                "  state visits: 1  [io.statefun.types/int]",
            ]

    run(scenario())


def test_after_a_restart_a_function_whose_calls_fail_is_not_said_never_called(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Called since the start, every call failing: its values are not yet known to be
    declared, and the note says its function has not answered, not that it was not called.
    A discovery reply is an answer: it names every state the function declares, so a value it
    stopped declaring is marked, though every call after it fails."""
    from .test_runtime import greeter_functions

    db = tmp_path / "db.sqlite"
    ann = Address("com.example/greeter", "Ann")

    def notes() -> list[str]:
        assert main(["state", str(ann), "--db", str(db)]) == 0
        return [line for line in capsys.readouterr().out.splitlines() if "state " in line]

    async def until_a_call_failed(runtime: Any) -> None:
        def attempts() -> int:
            return sum(entry["attempts"] for entry in runtime.stuck())

        before = attempts()  # the calls that failed in the run before
        while attempts() == before:
            await asyncio.sleep(0.02)

    def broken(_: int) -> web.Response:
        return web.Response(status=500, text="broken")

    def broken_after_discovery(request: int) -> web.Response | None:
        return None if request == 1 else broken(request)

    renamed = StatefulFunctions()

    @renamed.bind("com.example/greeter", specs=[ValueSpec("visits", IntType)])
    def greeter(context: Context, message: Message) -> None:
        context.storage.visits = 1

    async def scenario() -> None:
        async with serving(greeter_functions(), db) as (_, runtime):
            await runtime.send(ann, make_value("string", "Ann"))
            await runtime.wait_until_idle()
        async with serving(greeter_functions(), db, fault=broken, call="200ms") as (
            server,
            runtime,
        ):
            await runtime.send(ann, make_value("string", "Ann"))
            await until_a_call_failed(runtime)
            assert server.requests > 0
            assert runtime.inspect(ann)["state"]["seen_count"]["declared"] is None
            assert await asyncio.to_thread(notes) == [
                "  state seen_count: 1  [io.statefun.types/int]"
                "  (its function has not answered since the runtime started)"
            ]
        async with serving(renamed, db, fault=broken_after_discovery, call="200ms") as (
            server,
            runtime,
        ):
            await until_a_call_failed(runtime)
            assert runtime.inspect(ann)["state"]["seen_count"]["declared"] is False
            assert await asyncio.to_thread(notes) == [
                "  state seen_count: 1  [io.statefun.types/int]  (no longer declared)",
                "  state visits: (no value)  [io.statefun.types/int]",  # declared, none yet
            ]

    run(scenario())


def test_cli_egress_shows_a_kafka_records_headers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As the function wrote them, in order, a name twice and a null one too; a binary one as
    base64 (as ``--json`` shows them)."""
    functions = StatefulFunctions()

    @functions.bind("com.example/echo")
    def echo(context: Context, message: Message) -> None:
        headers = [("h", "v"), ("h", "w"), ("null", None), ("bin", b"\xff")]
        context.send_egress(kafka_egress_message("com.example/out", "t", "text", key="k",
                                                 headers=headers))  # fmt: skip
        context.send_egress(kafka_egress_message("com.example/out", "t", "plain", key="k"))

    db = tmp_path / "db.sqlite"

    async def scenario() -> None:
        async with serving(functions, db) as (_, runtime):
            await runtime.send(Address("com.example/echo", "k"), make_value("string", "x"))
            await runtime.wait_until_idle()

    run(scenario())
    assert main(["egress", "--db", str(db)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        '#1 com.example/out: topic=t key=k headers=[["h", "v"], ["h", "w"], ["null", null], '
        '["bin", {"base64": "/w=="}]] value=text',
        "#2 com.example/out: topic=t key=k value=plain",
    ]


#: Text that a terminal would act on (clear the screen, set its title) and a forged line.
HOSTILE = "\x1b[2J\x1b]0;owned\x07\r#9 com.example/out: \u202edegrof\n"


def test_cli_prints_what_a_record_an_id_or_an_error_holds_on_one_line_and_inert(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An id, a state value, an egress record and a function server's error body may hold
    anything, controls included (a Kafka record, a reply from whatever answers the endpoint's
    URL): ``state``, ``egress`` and ``stuck`` print them escaped, each entry on its lines,
    and an explicit bidi control escaped as the page shows it (a terminal that reorders text
    would draw what follows it backwards)."""
    functions = StatefulFunctions()

    @functions.bind("com.example/echo", specs=[ValueSpec("note", StringType)])
    def echo(context: Context, message: Message) -> None:
        context.storage.note = HOSTILE
        context.send_egress(kafka_egress_message("com.example/out", HOSTILE, HOSTILE,
                                                 key=HOSTILE))  # fmt: skip

    def fault(_: int) -> web.Response | None:
        return web.Response(status=400, text=HOSTILE)

    db = tmp_path / "db.sqlite"

    async def scenario() -> None:
        async with serving(functions, db) as (_, runtime):
            await runtime.send(Address("com.example/echo", HOSTILE), make_value("string", "x"))
            await runtime.wait_until_idle()
        async with serving(functions, db, fault=fault, call="100ms", failure_pause=30) as (
            _,
            runtime,
        ):
            await runtime.send(Address("com.example/echo", "y"), make_value("string", "x"))
            while not runtime.stuck():
                await asyncio.sleep(0.02)

    run(scenario())
    # HOSTILE as the output shows it (without its \\n: an error text is stripped)
    escaped = "\\x1b[2J\\x1b]0;owned\\x07\\r#9 com.example/out: \\u202edegrof"
    for command, lines in (
        (["state", f"com.example/echo/{HOSTILE}"], 5),
        (["egress"], 1),
        (["stuck"], 3),  # "no runtime is running on ...", then the entry's two lines
    ):
        assert main([*command, "--db", str(db)]) == 0
        out = capsys.readouterr().out
        assert escaped in out
        assert "\x1b" not in out and "\r" not in out
        assert "\u202e" not in out  # a bidi override: what follows would read reversed
        assert len(out.splitlines()) == lines, out


def test_cli_sends_a_file_s_bytes_as_they_are_up_to_the_body_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--bytes-file`` posts the file as it is (base64 in JSON would leave room for only
    768 KiB of the 1 MiB a body may hold); one byte over the limit is refused."""
    received: list[tuple[str, bytes]] = []
    functions = StatefulFunctions()

    @functions.bind("com.example/blob")
    def blob(context: Context, message: Message) -> None:
        received.append((message.value_typename(), message.raw_value() or b""))

    data = bytes(range(256)) * 3500  # 896,000 bytes, every byte value
    (tmp_path / "fits").write_bytes(data)
    (tmp_path / "over").write_bytes(b"x" * (1024 * 1024 + 1))

    async def scenario() -> None:
        async with serving(functions, tmp_path / "db.sqlite") as (_, runtime):
            runner, url = await serve_runtime(runtime)
            try:
                for name, code in (("fits", 0), ("over", 1)):
                    sent = await asyncio.to_thread(main, [
                        "send", "com.example/blob/b", "--bytes-file", str(tmp_path / name),
                        "--type", "com.example/Blob+v1", "--url", url,
                    ])  # fmt: skip
                    assert sent == code
                await runtime.wait_until_idle()
            finally:
                await runner.cleanup()

    run(scenario())
    assert received == [("com.example/Blob+v1", data)]
    out, err = capsys.readouterr()
    assert "sent com.example/Blob+v1 to com.example/blob/b" in out
    assert "1048576" in err


def echoed_once(db: Path) -> None:
    """A database in which com.example/echo/x was sent "hi", and echoed it to the egress."""

    async def scenario() -> None:
        async with serving(echo_functions(), db) as (_, runtime):
            await runtime.send(Address("com.example/echo", "x"), make_value("string", "hi"))
            await runtime.wait_until_idle()

    run(scenario())


def test_cli_audit_says_when_the_audit_log_is_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "db.sqlite"
    echoed_once(db)
    assert main(["audit", "--db", str(db)]) == 0
    assert capsys.readouterr().out == (
        "the audit log is empty: nothing was done to a stuck address or its state\n"
    )
    assert main(["audit", "--db", str(db), "--json"]) == 0  # JSON lines: none
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    "command", [["state", "com.example/echo/x"], ["egress"], ["stuck"], ["audit"]]
)
def test_cli_commands_that_read_the_database_close_it(tmp_path: Path, command: list[str]) -> None:
    """They left their read-only connection to the garbage collector, for which Python 3.13's
    sqlite3 warns ("unclosed database", a ResourceWarning): an error to a caller of main() who
    runs with warnings as errors. (Older Pythons close it without a word: this fails on 3.13.)"""
    db = tmp_path / "db.sqlite"
    echoed_once(db)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main([*command, "--db", str(db)]) == 0
        gc.collect()
    assert [str(w.message) for w in caught if "unclosed database" in str(w.message)] == []


def test_cli_reports_module_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    module = tmp_path / "module.yaml"
    module.write_text("kind: io.statefun.endpoints.v2/http\nspec: {functions: a/b}\n")
    assert main(["run", str(module), "--db", str(tmp_path / "db")]) == 2
    err = capsys.readouterr().err
    assert "document 0" in err and "spec.urlPathTemplate: is required" in err
    assert main(["state", "a/b/c", "--db", str(tmp_path / "missing.db")]) == 2
    assert "no database" in capsys.readouterr().err
    module.write_text(
        "kind: io.statefun.endpoints.v2/http\n"
        "spec: {functions: a/b, urlPathTemplate: 'http://x/'}\n"
    )
    assert main(["run", str(module), "--db", str(tmp_path / "no/such/dir/db")]) == 2
    assert "no/such/dir does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("content", ["random bytes", "text", "a directory", "a damaged page"])
def test_cli_names_the_database_file_it_can_not_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str
) -> None:
    """A file that is no SQLite database (a wrong --db, a damaged copy) is named with what is
    wrong: an operator with several databases knows which one, whichever command read it."""
    module = tmp_path / "module.yaml"
    module.write_text(
        "kind: io.statefun.endpoints.v2/http\n"
        "spec: {functions: a/b, urlPathTemplate: 'http://127.0.0.1:1/'}\n"
    )
    db = tmp_path / "runtime.db"
    if content == "a directory":
        db.mkdir()
    elif content == "a damaged page":  # its header good, its mailbox's pages overwritten
        store = SqliteStore.open(db)
        store.conn.executemany(
            "INSERT INTO mailbox (target_type, target_id, arg_typename, arg_has_value, "
            "arg_value) VALUES ('a/b', ?, 't/t', 1, ?)",
            [(str(n), b"x" * 100) for n in range(2000)],
        )
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        store.close()
        with db.open("r+b") as file:
            file.seek(db.stat().st_size // 2)
            file.write(bytes(range(256)) * 64)
    else:
        db.write_bytes(bytes(range(256)) * 64 if content == "random bytes" else b"hello\n" * 100)
    commands = [["run", str(module), "--port", "0", "--offline"], ["state", "a/b/c"], ["egress"],
                ["stuck"], ["audit"]]  # fmt: skip
    for command in commands:
        assert main([*command, "--db", str(db)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"statefun-local: the database {db}: "), (command, err)
        assert err.count("\n") == 1, (command, err)


def test_cli_run_leaves_another_application_s_database_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--db`` naming another application's SQLite file (a typo, the wrong volume) is
    refused: statefun-local's tables were added to it, and the runtime ran on it. The commands
    that read the database say the same (they said 'no such table: meta')."""
    module = tmp_path / "module.yaml"
    module.write_text(
        "kind: io.statefun.endpoints.v2/http\n"
        "spec: {functions: a/b, urlPathTemplate: 'http://127.0.0.1:1/'}\n"
    )
    db = tmp_path / "app.sqlite"
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.executescript("CREATE TABLE users (id INTEGER); CREATE TABLE orders (id INTEGER);")
    for command in (["run", str(module), "--port", "0", "--offline"], ["state", "a/b/c"],
                    ["egress"], ["stuck"], ["audit"]):  # fmt: skip
        assert main([*command, "--db", str(db)]) == 2
        assert capsys.readouterr().err == (
            f"statefun-local: the database {db} is not statefun-local's (it holds the tables "
            "orders, users): give another --db\n"
        ), command
    with contextlib.closing(sqlite3.connect(db)) as conn:
        tables = conn.execute("SELECT name FROM sqlite_master ORDER BY name").fetchall()
    assert tables == [("orders",), ("users",)]


def test_cli_run_names_the_database_whose_directory_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = tmp_path / "module.yaml"
    module.write_text(
        "kind: io.statefun.endpoints.v2/http\n"
        "spec: {functions: a/b, urlPathTemplate: 'http://127.0.0.1:1/'}\n"
    )
    db = tmp_path / "no" / "such" / "runtime.db"
    assert main(["run", str(module), "--db", str(db), "--port", "0", "--offline"]) == 2
    assert capsys.readouterr().err == (
        f"statefun-local: the database {db}: its directory {db.parent} does not exist\n"
    )


def without_privilege() -> list[str]:
    """A command prefix under which file permissions hold: root's own are dropped (its
    capability to override them), through util-linux' setpriv."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("root overrides file permissions, and setpriv is not there to drop that")
    capabilities = "-dac_override,-dac_read_search"
    return ["setpriv", f"--bounding-set={capabilities}", f"--inh-caps={capabilities}"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
@pytest.mark.parametrize("read_only", ["the directory", "the file"])
def test_cli_run_says_the_database_it_may_not_write_is_read_only(
    tmp_path: Path, read_only: str
) -> None:
    """``run`` on a database it may not write (the volume's files of another user, a read-only
    directory) is refused at once, saying so with its path: not SQLite's bare "attempt to write
    a readonly database"."""
    module = tmp_path / "module.yaml"
    module.write_text(
        "kind: io.statefun.endpoints.v2/http\n"
        "spec: {functions: a/b, urlPathTemplate: 'http://127.0.0.1:1/'}\n"
    )
    folder = tmp_path / "data"
    folder.mkdir()
    db = folder / "runtime.db"
    if read_only == "the file":
        SqliteStore.open(db).close()
        db.chmod(0o444)
    else:
        folder.chmod(0o555)
    try:
        refused = subprocess.run(
            [*without_privilege(), sys.executable, "-m", "statefun_local", "run", str(module),
             "--db", str(db), "--port", "0", "--offline"],
            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    finally:
        folder.chmod(0o755)
    assert refused.returncode == 2
    if read_only == "the file":
        assert refused.stderr == (
            f"statefun-local: the database {db} is read-only to this user: the runtime writes "
            "to it, as state --set does (state, egress, stuck and audit only read it)\n"
        )
    else:
        assert refused.stderr == (
            f"statefun-local: the database {db}: can not open it: Permission denied\n"
        )
    if read_only == "the file":  # the commands that only read it still do
        assert main(["state", "a/b/c", "--db", str(db)]) == 0


@pytest.mark.parametrize("command", [["egress"], ["state", "com.example/echo/x"]])
def test_cli_output_to_a_reader_gone_away_ends_quietly(tmp_path: Path, command: list[str]
                                                        ) -> None:  # fmt: skip
    """``statefun-local egress | head -1``: once ``head`` has gone, no error is printed."""
    db = tmp_path / "db.sqlite"
    echoed_once(db)
    process = subprocess.Popen([sys.executable, "-m", "statefun_local", *command, "--db", str(db)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    assert process.stdout is not None
    process.stdout.close()  # before the process writes: every write finds no reader
    try:
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
        process.wait()
    assert (process.returncode, err.decode()) == (0, "")


def test_cli_run_on_a_port_in_use_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = tmp_path / "module.yaml"
    module.write_text(
        "kind: io.statefun.endpoints.v2/http\n"
        "spec: {functions: a/b, urlPathTemplate: 'http://127.0.0.1:1/'}\n"
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        code = main(["run", str(module), "--db", str(tmp_path / "db"), "--port", port,
                     "--offline"])  # fmt: skip
    assert code == 2
    assert capsys.readouterr().err.endswith(
        f"statefun-local: port {port} of 127.0.0.1 is in use (another statefun-local? give "
        "--port)\n"
    )


def test_cli_run_refuses_a_database_another_runtime_runs_on_by_another_path(
    tmp_path: Path,
) -> None:
    """A second ``run`` on the same database through a symbolic link (or another directory
    name) or a hard link is refused as the same path is: both would call every batch, and every
    reply would be applied twice (each egress record written twice, each count off)."""
    from .test_stuck import Runtime

    module = tmp_path / "module.yaml"
    module.write_text(
        "kind: io.statefun.endpoints.v2/http\n"
        "spec: {functions: a/b, urlPathTemplate: 'http://127.0.0.1:1/'}\n"
    )
    db = tmp_path / "data" / "runtime.db"
    db.parent.mkdir()
    (tmp_path / "link.db").symlink_to(db)
    (tmp_path / "linked-dir").symlink_to(db.parent)

    async def scenario() -> None:
        async with Runtime(module, db) as runtime:
            await runtime.start()
            os.link(db, tmp_path / "hard-link.db")  # the database file, once the runtime made it
            for other in (tmp_path / "link.db", tmp_path / "linked-dir" / "runtime.db",
                          tmp_path / "hard-link.db"):  # fmt: skip
                second = subprocess.run(
                    [sys.executable, "-m", "statefun_local", "run", str(module), "--db",
                     str(other), "--port", "0", "--offline"],
                    capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
                )  # fmt: skip
                assert (second.returncode, second.stderr) == (
                    2,
                    f"statefun-local: another statefun-local is running on {other}\n",
                )

    run(scenario())


@pytest.mark.parametrize("verbose", [True, False])
def test_cli_run_verbose_logs_every_failed_attempt_of_a_call(tmp_path: Path, verbose: bool
                                                             ) -> None:  # fmt: skip
    """``run -v`` logs every failed attempt of a call to a function server that is down, as its
    help says; without it, the 1st and every 10th."""
    from .test_stuck import Runtime

    module = tmp_path / "module.yaml"
    module.write_text("kind: io.statefun.endpoints.v2/http\n"
                      f"spec: {{functions: a/*, urlPathTemplate: 'http://127.0.0.1:{free_port()}/',"
                      " transport: {call: 2s}}\n")  # fmt: skip

    async def until_failed(runtime: Runtime) -> list[str]:
        """The runtime's log until the call has failed for good."""
        for _ in range(1200):
            logged = []
            for line in runtime.output().splitlines(keepends=True):
                logged.append(line)
                if "batch of 1 message(s) failed" in line and line.endswith("\n"):
                    return logged
            await asyncio.sleep(0.05)
        raise AssertionError("the call did not fail for good within a minute")

    async def scenario() -> None:
        async with Runtime(module, tmp_path / "db", *(["-v"] if verbose else [])) as runtime:
            await runtime.start()
            assert main(["send", "a/b/c", "--string", "x", "--url", runtime.url]) == 0
            logged = await until_failed(runtime)
            failed = re.search(r"failed after (\d+) attempt", logged[-1])
            assert failed, logged[-1]
            attempts = int(failed[1])
            reported = [
                int(found[1])
                for line in logged
                if (found := re.search(r"a/b/c: POST .*: attempt (\d+) failed", line))
            ]
            assert attempts > 10
            assert reported == (list(range(1, attempts)) if verbose else [1, 10])
            # dated, for a runtime that runs for days
            dated = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (INFO|WARNING|ERROR|DEBUG) "
            assert re.match(dated, logged[-1])

    run(scenario())


def test_cli_run_on_port_0_prints_the_port_it_listens_on(tmp_path: Path) -> None:
    module = tmp_path / "module.yaml"
    module.write_text(
        "kind: io.statefun.endpoints.v2/http\n"
        "spec: {functions: a/*, urlPathTemplate: 'http://127.0.0.1:1/'}\n"
    )
    log = tmp_path / "runtime.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "statefun_local", "run", str(module), "--db",
             str(tmp_path / "db"), "--port", "0", "--offline"],
            stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        banner = r"web page and ingress on (http://127.0.0.1:(\d+)/)"
        deadline = time.monotonic() + 60
        while not (found := re.search(banner, log.read_text())):
            assert process.poll() is None and time.monotonic() < deadline, "did not start"
            time.sleep(0.05)
        assert found[2] != "0"
        assert main(["send", "a/b/c", "--string", "x", "--url", found[1]]) == 0
    except BaseException:
        print(f"--- the runtime's log\n{log.read_text()}", file=sys.stderr)
        raise
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_an_ingress_request_held_back_when_the_runtime_stops_is_told_it_was_not_queued(
    tmp_path: Path,
) -> None:
    """An ingress request waiting while its target has ``maxNumBatchRequests`` messages
    buffered, when the runtime gets SIGTERM, is answered 503 and its message is not queued: the
    client knows to send it again. (Its connection was closed on it, without an answer: the
    client could not tell whether the message was queued.)"""
    release: list[asyncio.Event] = []  # made on the loop: Python 3.9's binds to the current one
    functions = StatefulFunctions()

    @functions.bind("com.example/slow")
    async def slow(context: Context, message: Message) -> None:
        await release[0].wait()

    async def scenario() -> None:
        from .conftest import FunctionServer, module_yaml
        from .test_stuck import Runtime

        release.append(asyncio.Event())

        async with FunctionServer(functions) as server:
            module = tmp_path / "module.yaml"
            module.write_text(module_yaml(server.url, max_batch=1, call="60s"))
            async with Runtime(module, tmp_path / "db.sqlite") as runtime:
                try:
                    await runtime.start()
                    url = runtime.url
                    async with aiohttp.ClientSession() as session:

                        async def send(n: int) -> tuple[int, str]:
                            async with session.post(
                                f"{url}/ingress/com.example/slow/x",
                                json={"type": "int", "value": n},
                            ) as response:
                                return response.status, await response.text()

                        assert (await send(1))[0] == 202  # its call waits for release
                        while server.requests == 0:
                            await asyncio.sleep(0.01)
                        assert (await send(2))[0] == 202  # buffered: the address is full
                        held = asyncio.ensure_future(send(3))
                        for _ in range(3):  # the runtime has read the request before these
                            async with session.get(f"{url}/api/status") as response:
                                assert response.status == 200
                        assert not held.done()
                        assert await runtime.stop() == 0  # SIGTERM
                        assert await held == (
                            503, "the runtime is stopping: the message was not queued; send it "
                            "again once the runtime runs\n")  # fmt: skip
                finally:
                    release[0].set()
        conn = sqlite3.connect(tmp_path / "db.sqlite")
        queued = conn.execute("SELECT arg_value FROM mailbox ORDER BY seq").fetchall()
        conn.close()
        assert [IntType.serializer().deserialize(value) for (value,) in queued] == [1, 2]

    run(scenario())


def test_an_ingress_request_that_comes_once_the_server_stops_is_told_it_was_not_queued(
    tmp_path: Path,
) -> None:
    """A request whose send starts after the server began stopping (its body still coming at
    SIGTERM), to a target with ``maxNumBatchRequests`` buffered, is answered 503 too: stopping
    had cancelled the sends waiting then, and nothing cancelled this one, which waited."""
    release: list[asyncio.Event] = []  # made on the loop: Python 3.9's binds to the current one
    functions = StatefulFunctions()

    @functions.bind("com.example/slow")
    async def slow(context: Context, message: Message) -> None:
        await release[0].wait()

    async def scenario() -> None:
        release.append(asyncio.Event())
        async with serving(functions, tmp_path / "db.sqlite", max_batch=1) as (server, runtime):
            runner, url = await serve_runtime(runtime)
            try:
                async with aiohttp.ClientSession() as session:

                    async def send(n: int) -> tuple[int, str]:
                        async with session.post(
                            f"{url}/ingress/com.example/slow/x", json={"type": "int", "value": n}
                        ) as response:
                            return response.status, await response.text()

                    assert (await send(1))[0] == 202  # its call waits for release
                    while server.requests == 0:
                        await asyncio.sleep(0.01)
                    assert (await send(2))[0] == 202  # buffered: the address is full
                    assert runner.app is not None
                    await runner.app.shutdown()  # what stopping runs first: the site still serves
                    late = asyncio.ensure_future(send(3))
                    await asyncio.wait({late}, timeout=10)  # only a guard against a hang
                    assert late.done(), "the late request waits in its send"
                    assert late.result() == (
                        503, "the runtime is stopping: the message was not queued; send it "
                        "again once the runtime runs\n")  # fmt: skip
            finally:
                release[0].set()
                await runner.cleanup()

    run(scenario())


def test_cli_send_names_the_json_it_could_not_read(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["send", "a/b/c", "--json", "{bad", "--type", "a/T"]) == 2
    assert capsys.readouterr().err.startswith("statefun-local: --json is not JSON: Expecting ")


def test_kafka_records_are_routed_like_the_kafka_ingress(tmp_path: Path) -> None:
    from .test_runtime import greeter_functions

    extra = kafka_ingress("io.statefun.types/string", "com.example/greeter")

    async def scenario() -> list[Any]:
        from statefun_local import LocalRuntime, parse_module

        from statefun_core.types import StringType

        from .conftest import FunctionServer, module_yaml

        async with FunctionServer(greeter_functions()) as server:
            module = parse_module(module_yaml(server.url, extra=extra))
            async with LocalRuntime(module, tmp_path / "db.sqlite", offline=True) as runtime:
                runner, url = await serve_runtime(runtime)
                try:
                    async with aiohttp.ClientSession() as session:
                        # StringWrapper bytes, as a producer must write for a string valueType
                        value = StringType.serializer().serialize("Ann")
                        async with session.post(
                            f"{url}/records/com.example/names?topic=names&key=Ann", data=value
                        ) as response:
                            assert response.status == 202, await response.text()
                        async with session.post(
                            f"{url}/records/com.example/names?topic=other&key=Ann", data=value
                        ) as response:
                            assert response.status == 400
                            assert "does not read 'other'" in await response.text()
                        async with session.post(
                            f"{url}/records/com.example/names?topic=names", data=value
                        ) as response:
                            assert response.status == 400
                            assert "without a key" in await response.text()
                        # the empty key is an id, as the runtime takes it
                        bo = StringType.serializer().serialize("Bo")
                        async with session.post(
                            f"{url}/records/com.example/names?topic=names&key=", data=bo
                        ) as response:
                            assert response.status == 202, await response.text()
                    await runtime.wait_until_idle()
                finally:
                    await runner.cleanup()
                return sorted(r["record"]["kafka"]["value"] for r in runtime.egress_records())

    assert run(scenario()) == ["Hello Ann for the 1th time!", "Hello Bo for the 1th time!"]


def test_a_record_is_queued_for_all_its_targets_or_for_none(tmp_path: Path) -> None:
    """POST /records waits until every target of the record has room, then queues all its
    messages in one transaction: a kill -9 while it waits leaves no target with the record,
    so the client's retry delivers it once to each."""
    from statefun_local.store import connect

    from .conftest import FunctionServer, module_yaml
    from .test_stuck import Runtime

    functions = StatefulFunctions()
    received: list[tuple[str, str]] = []
    db = tmp_path / "db.sqlite"

    async def post(runtime: Runtime, record: bytes, timeout: float = 30) -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{runtime.url}/records/com.example/names?topic=names&key=k",
                data=record,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response,
        ):
            assert response.status == 202, await response.text()

    async def until_received(*expected: tuple[str, str]) -> None:
        for _ in range(600):
            if set(expected) <= set(received):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"never received {expected}: {received}")

    async def scenario() -> None:
        slow_done = asyncio.Event()

        @functions.bind("com.example/fast")
        def fast(context: Context, message: Message) -> None:
            received.append(("fast", (message.raw_value() or b"").decode()))

        @functions.bind("com.example/slow")
        async def slow(context: Context, message: Message) -> None:
            received.append(("slow", (message.raw_value() or b"").decode()))
            await slow_done.wait()

        async with FunctionServer(functions) as server:
            module = tmp_path / "module.yaml"
            targets = "com.example/fast, com.example/slow"
            module.write_text(
                module_yaml(
                    server.url,
                    call="60s",
                    max_batch=1,
                    extra=kafka_ingress("com.example/Raw", targets),
                )
            )
            runtime = Runtime(module, db)
            try:
                await runtime.start()
                await post(runtime, b"r1")
                await until_received(("fast", "r1"), ("slow", "r1"))  # slow holds r1
                await post(runtime, b"r2")  # queued behind r1: slow is at its threshold
                await until_received(("fast", "r2"))
                with pytest.raises(asyncio.TimeoutError):  # r3 waits for room at slow
                    await post(runtime, b"r3", timeout=1)
                await runtime.kill_9()
                assert ("fast", "r3") not in received
                conn = connect(db, readonly=True)
                try:
                    rows = conn.execute("SELECT COUNT(*) FROM mailbox WHERE arg_value = ?",
                                        (b"r3",)).fetchone()  # fmt: skip
                finally:
                    conn.close()
                assert rows == (0,)
                # the client retries once the runtime is back
                await runtime.start()
                slow_done.set()
                await post(runtime, b"r3")
                await until_received(("fast", "r3"), ("slow", "r3"))
            except BaseException:
                print(f"--- the runtime's log ---\n{runtime.output()}")
                raise
            finally:
                slow_done.set()
                await runtime.stop()
                runtime.log.close()
        assert [value for name, value in received if name == "fast"] == ["r1", "r2", "r3"]

    run(scenario())


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ("run", "run the functions of one or more module.yaml files"),
        ("retry", "retry the head message of a stuck address now"),
        ("dead-letter", "move the head message of a stuck address to the dead-letter egress"),
    ],
)
def test_each_command_s_help_says_what_it_does(
    command: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A command's own --help said only its usage and options (what it does was in the list
    of commands only, and dead-letter's there said 'move it ... (likewise)')."""
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert says in text
    assert "likewise" not in text


@pytest.mark.parametrize("command", [["state", "a/b/c"], ["audit"]])
@pytest.mark.parametrize("limit", ["abc", "0"])
def test_a_limit_that_is_not_a_count_is_refused_in_the_user_s_words(
    command: list[str], limit: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--limit abc`` was refused as "invalid _positive value": the name of the CLI's own
    parsing function, not what the option wants."""
    with pytest.raises(SystemExit):
        main([*command, "--limit", limit])
    error = capsys.readouterr().err.splitlines()[-1]
    assert error.endswith(f"argument --limit: must be a whole number, 1 or more, not {limit!r}")
