"""The playground image's HTTP ingress and egress (``io.statefun.playground.v1/ingress`` and
``/egress``), which Apache's own Python greeter uses: its ``module.yaml`` runs as it is. Real
function servers, a real ``statefun-local run`` process, real HTTP and SQLite."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Optional

import aiohttp
import pytest
import yarl
from aiohttp import web
from statefun_local import LocalRuntime, ModuleError, make_value, parse_module
from statefun_local.cli import main
from statefun_local.guard import one_line
from statefun_local.server import make_app, make_apps

from statefun_core import (
    Context,
    IntType,
    Message,
    StatefulFunctions,
    ValueSpec,
    egress_message_builder,
    make_json_type,
    message_builder,
    simple_type,
)
from statefun_core.engine import Address

from .conftest import FunctionServer, run
from .test_kafka_edges import free_port
from .test_stuck import Runtime

GREET_REQUEST = make_json_type("example/GreetRequest")
EGRESS_RECORD = make_json_type("io.statefun.playground/EgressRecord")
PLAYGROUND_EGRESS = "io.statefun.playground/egress"


def greeter_functions(topic: str = "greetings") -> StatefulFunctions:
    """Our own greeter in the playground's shape: ``person`` counts the visits and forwards the
    request, ``greeter`` writes a greeting to the playground egress."""
    functions = StatefulFunctions()

    @functions.bind("example/person", specs=[ValueSpec("visits", IntType)])
    def person(context: Context, message: Message) -> None:
        visits = (context.storage.visits or 0) + 1
        context.storage.visits = visits
        request = {**message.as_type(GREET_REQUEST), "visits": visits}
        context.send(message_builder(target_typename="example/greeter", target_id=request["name"],
                                     value=request, value_type=GREET_REQUEST))  # fmt: skip

    @functions.bind("example/greeter")
    def greeter(context: Context, message: Message) -> None:
        request = message.as_type(GREET_REQUEST)
        payload = f"{request['name']} visit {request['visits']}"
        context.send_egress(egress_message_builder(target_typename=PLAYGROUND_EGRESS,
                                                   value={"topic": topic, "payload": payload},
                                                   value_type=EGRESS_RECORD))  # fmt: skip

    return functions


def playground_module(url: str, ingress_port: int, egress_port: int) -> str:
    return f"""
kind: io.statefun.endpoints.v2/http
spec:
  functions: example/*
  urlPathTemplate: {url}
  transport:
    type: io.statefun.transports.v1/async
---
kind: io.statefun.playground.v1/ingress
spec:
  port: {ingress_port}
---
kind: io.statefun.playground.v1/egress
spec:
  port: {egress_port}
  topics:
    - greetings
    - other
"""


def greet(name: str) -> dict[str, Any]:
    """A ``PUT`` to the playground ingress, as the greeter's README sends it."""
    return {"data": json.dumps({"name": name}),
            "headers": {"Content-Type": "application/vnd.example/GreetRequest"}}  # fmt: skip


async def put(url: str, name: str) -> None:
    async with aiohttp.ClientSession() as session, session.put(url, **greet(name)) as response:
        assert response.status == 200, await response.text()


async def take_all(session: aiohttp.ClientSession, url: str, count: int) -> list[str]:
    """The next ``count`` payloads of the egress topic at ``url``, polled as a user does."""
    taken: list[str] = []
    while len(taken) < count:
        async with session.get(url) as response:
            if response.status == 404:
                await asyncio.sleep(0.05)
                continue
            assert response.status == 200, await response.text()
            taken.append(await response.text())
    return taken


def test_the_greeter_s_module_runs_as_it_is_with_its_ingress_on_the_runtime_s_port(
    tmp_path: Path,
) -> None:
    """``statefun-local run --offline`` on the playground greeter's module: the messages PUT to
    its ingress (on the runtime's own port, as 8090 is both) reach the functions, each greeting
    is taken once from its egress topic, and the runtime's own API still answers there. An id
    of 100 kB in the path is taken, as the image's HTTP server takes a request head of up to
    1 MiB (aiohttp's own limit is 8190 bytes)."""
    port, egress_port = free_port(), free_port()
    long_name = "L" * 100_000

    async def scenario() -> tuple[list[str], list[tuple[str, int, str]], str]:
        async with FunctionServer(greeter_functions()) as server:
            module = tmp_path / "module.yaml"
            module.write_text(playground_module(server.url, port, egress_port))
            async with Runtime(module, tmp_path / "db", port=port) as runtime:
                await runtime.start()
                base, egress = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{egress_port}"
                async with aiohttp.ClientSession() as session:
                    for name in ("Bob", "Joe", "Bob", long_name):
                        async with session.put(f"{base}/example/person/{name}", **greet(name)) as r:
                            assert r.status == 200, await r.text()
                    greetings = await take_all(session, f"{egress}/greetings", 4)
                    answers = []
                    for url in (f"{egress}/greetings", f"{egress}/nope", f"{base}/api/status"):
                        async with session.get(url) as response:
                            answers.append((url, response.status, await response.text()))
                assert await runtime.stop() == 0
                return greetings, answers, runtime.output()

    greetings, answers, banner = run(scenario())
    assert sorted(greetings) == [
        "Bob visit 1",
        "Bob visit 2",
        "Joe visit 1",
        f"{long_name} visit 1",
    ]
    assert greetings.index("Bob visit 1") < greetings.index("Bob visit 2")
    (_, empty, _), (_, unknown, why), (_, status, body) = answers
    assert (empty, unknown) == (404, 405)
    assert why == "no topic 'nope' in the playground egress (its topics: greetings, other)\n"
    assert status == 200 and json.loads(body)["totals"]["delivered"] == 8
    shown = json.loads(body)
    assert [
        (io["kind"], io["id"], io["address"]) for io in shown["ingresses"] + shown["egresses"]
    ] == [
        ("playground", "io.statefun.playground/ingress", f"port {port}"),
        ("playground", PLAYGROUND_EGRESS, f"port {egress_port}"),
    ]
    assert shown["egresses"][0]["semantic"] == "greetings, other"
    assert f"playground ingress: PUT http://127.0.0.1:{port}/<namespace>/<type>/<id>" in banner
    assert f"playground egress: GET http://127.0.0.1:{egress_port}/greetings" in banner


@asynccontextmanager
async def playground(
    tmp_path: Path, functions: StatefulFunctions
) -> AsyncIterator[tuple[LocalRuntime, str, str]]:
    """A runtime on the playground module, its ingress and egress each on a port of its own:
    the runtime and the ingress' and egress' base URLs."""
    ingress_port, egress_port = free_port(), free_port()
    async with FunctionServer(functions) as server:
        module = parse_module(playground_module(server.url, ingress_port, egress_port))
        async with LocalRuntime(module, tmp_path / "db", offline=True,
                                failure_pause=0.05) as runtime:  # fmt: skip
            runners = []
            for port, app in make_apps(runtime, free_port()).items():
                runner = web.AppRunner(app, access_log=None)
                await runner.setup()
                await web.TCPSite(runner, "127.0.0.1", port).start()
                runners.append(runner)
            try:
                yield (runtime, f"http://127.0.0.1:{ingress_port}",
                       f"http://127.0.0.1:{egress_port}")  # fmt: skip
            finally:
                for runner in runners:
                    await runner.cleanup()


def test_the_ingress_types_the_body_by_its_content_type_and_refuses_what_it_can_not_route(
    tmp_path: Path,
) -> None:
    """A body is the message's bytes, its typename from ``application/vnd.<typename>``, else
    ``io.statefun.types/string`` (as the playground image); a path that is no address, or an
    address no endpoint serves, is refused and says why."""

    received: list[tuple[str, str, bytes]] = []
    functions = StatefulFunctions()

    @functions.bind("example/raw")
    def raw(context: Context, message: Message) -> None:
        received.append((context.address.id, message.value_typename(), message.raw_value()))

    async def scenario() -> list[tuple[int, str]]:
        async with playground(tmp_path, functions) as (runtime, ingress, _):
            answers = []
            async with aiohttp.ClientSession() as session:
                for path, content_type in [
                    ("example/raw/a", "application/vnd.example/Raw; charset=utf-8"),
                    ("example/raw/{a}", "application/vnd.example/Raw"),
                    ("example/raw/b", "application/octet-stream"),
                    ("example/raw", "application/vnd.example/Raw"),
                    ("other/fn/c", "application/vnd.example/Raw"),
                ]:
                    headers = {"Content-Type": content_type}
                    async with session.post(
                        f"{ingress}/{path}", data=b"\x01", headers=headers
                    ) as r:
                        answers.append((r.status, await r.text()))
            await runtime.wait_until_idle()
            return answers

    answers = run(scenario())
    assert [status for status, _ in answers] == [200, 200, 200, 400, 400]
    assert json.loads(answers[0][1]) == {"target": "example/raw/a", "type": "example/Raw", "seq": 1}
    assert answers[3][1] == "/example/raw: the playground ingress takes /<namespace>/<type>/<id>\n"
    assert "other/fn" in answers[4][1]
    assert sorted(received) == [
        ("a", "example/Raw", b"\x01"),
        ("b", "io.statefun.types/string", b"\x01"),
        ("{a}", "example/Raw", b"\x01"),
    ]


def test_the_id_in_the_path_is_read_as_the_playground_image_reads_it(tmp_path: Path) -> None:
    """The id each path gives is the one the image's HTTP server (Undertow 2.2.16, run on these
    very paths) gives its ingress: escapes decoded, but ``%2F`` and ``%5C`` kept as they are;
    bytes that are not UTF-8 as Java reads them; a path parameter (``;b=c``) left out; empty
    parts at the end dropped. A ``%`` without two hex digits is refused (Undertow: 400), and so
    is a path of more than three parts (the image: 500)."""
    received: list[str] = []
    functions = StatefulFunctions()

    @functions.bind("example/raw")
    def raw(context: Context, message: Message) -> None:
        received.append(context.address.id)

    ids = {
        "%F0%9F%99%82": "\U0001f642",
        "%D7%A9%D7%9C%D7%95%D7%9D": "\u05e9\u05dc\u05d5\u05dd",
        "e%CC%81": "e\u0301",
        "a%00b": "a\x00b",
        "line%0Abreak%0D": "line\nbreak\r",
        "a%20b+c": "a b+c",
        "a%2Fb": "a%2Fb",
        "a%2fb": "a%2fb",
        "a%5Cb": "a%5Cb",
        "a%25b": "a%b",
        "%2E%2E": "..",
        "a%3Bb": "a;b",
        "p;b=c": "p",
        "%FF": "\ufffd",
        "%ED%A0%80": "\ufffd",  # an encoded surrogate: one U+FFFD, as Java reads it
        "a%C3%28": "a\ufffd(",
        "q/": "q",
        "r//": "r",
        "s?id=other": "s",  # the query is not read
    }
    refused = ["a%", "a%zz", "a/b"]

    async def scenario() -> list[tuple[int, str]]:
        async with playground(tmp_path, functions) as (runtime, ingress, _):
            answers = []
            async with aiohttp.ClientSession() as session:
                for path in [*ids, *refused]:
                    url = yarl.URL(f"{ingress}/example/raw/{path}", encoded=True)
                    async with session.put(url, data=b"", headers={"Content-Type": "text/x"}) as r:
                        answers.append((r.status, await r.text()))
                # the request target in absolute form, as a client sends it through a proxy
                url = yarl.URL(f"{ingress}/example/raw/via%2Fproxy", encoded=True)
                async with session.put(url, data=b"", headers={"Content-Type": "text/x"},
                                       proxy=ingress) as r:  # fmt: skip
                    answers.append((r.status, await r.text()))
            await runtime.wait_until_idle()
            return answers

    answers = run(scenario())
    *answers, via_proxy = answers
    assert via_proxy[0] == 200 and json.loads(via_proxy[1])["target"] == "example/raw/via%2Fproxy"
    assert [status for status, _ in answers] == [200] * len(ids) + [400] * len(refused)
    assert [json.loads(text)["target"] for _, text in answers[: len(ids)]] == [
        f"example/raw/{id}" for id in ids.values()
    ]
    assert sorted(received) == sorted([*ids.values(), "via%2Fproxy"])
    assert [text for _, text in answers[len(ids) :]] == [
        "/example/raw/a%: a '%' is not followed by two hex digits (a '%' is sent as %25)\n",
        "/example/raw/a%zz: a '%' is not followed by two hex digits (a '%' is sent as %25)\n",
        "/example/raw/a/b: the playground ingress takes /<namespace>/<type>/<id> (a '/' in an id "
        "can not be sent: the playground image keeps %2F as it is)\n",
    ]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Content-Type": "application/x-www-form-urlencoded"}, {"Content-Type": "text/plain"}],
)
def test_a_body_of_a_type_any_page_can_send_is_refused_with_the_way_to_type_it(
    tmp_path: Path, headers: dict[str, str]
) -> None:
    """What the guard refuses on every port (a type another site's page could send, such as
    ``curl -d``'s form) is answered, on the playground ingress, with the Content-Type that
    names the message's type, not the runtime's own ingress' application/json."""

    async def scenario() -> tuple[int, str]:
        async with playground(tmp_path, greeter_functions()) as (_, ingress, _), \
                aiohttp.ClientSession(skip_auto_headers=["Content-Type"]) as session, \
                session.put(f"{ingress}/example/person/Ann", data=b"Ann",
                            headers=headers) as response:  # fmt: skip
            return response.status, await response.text()

    status, text = run(scenario())
    assert status == 415
    assert "send application/vnd.<namespace>/<type> (the message's typename)" in text


def test_a_greeting_taken_from_the_egress_stays_taken_after_a_restart(tmp_path: Path) -> None:
    """Each record is taken once, the position kept in the database: after a restart the
    next ``GET`` gives the record not taken yet, not the first again."""

    async def scenario() -> list[str]:
        taken = []
        for name in ("Ann", "Bea"):
            async with playground(tmp_path, greeter_functions()) as (runtime, ingress, egress):
                await put(f"{ingress}/example/person/{name}", name)
                await runtime.wait_until_idle()
                async with aiohttp.ClientSession() as session:
                    taken += await take_all(session, f"{egress}/greetings", 1)
        return taken

    assert run(scenario()) == ["Ann visit 1", "Bea visit 1"]


def test_a_record_for_a_topic_the_egress_lacks_fails_the_call_and_says_so(tmp_path: Path) -> None:
    """The playground image fails the job on it; here the reply is refused, nothing applied."""

    async def scenario() -> tuple[list[str], Any]:
        functions = greeter_functions(topic="typo")
        async with playground(tmp_path, functions) as (runtime, ingress, _):
            await put(f"{ingress}/example/person/Ann", "Ann")
            while not runtime.failures:
                await asyncio.sleep(0.05)
            return [failure.error for failure in runtime.failures], runtime.egress_records()

    errors, records = run(scenario())
    assert records == []
    assert re.search(
        r"example/greeter/Ann sent egress io.statefun.playground/egress a record to topic "
        r"'typo', which is not one of its topics \(greetings, other\)",
        errors[0],
    ), errors


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ("kind: io.statefun.playground.v1/ingress\nspec: {}", "spec.port: is required"),
        ("kind: io.statefun.playground.v1/ingress\nspec: {port: 70000}",
         "spec.port: must be a TCP port from 1 to 65535, got 70000"),
        ("kind: io.statefun.playground.v1/egress\nspec: {port: 8091}", "spec.topics: is required"),
        ("kind: io.statefun.playground.v1/egress\nspec: {port: 8091, topics: greetings}",
         "spec.topics: must be a list of topic names, got 'greetings'"),
    ],
)  # fmt: skip
def test_a_playground_document_without_what_it_needs_is_refused(
    document: str, problem: str
) -> None:
    endpoint = (
        "kind: io.statefun.endpoints.v2/http\nspec: {functions: a/*, urlPathTemplate: 'http://h/'}"
    )
    with pytest.raises(ModuleError) as refused:
        parse_module(f"{endpoint}\n---\n{document}")
    assert refused.value.problems == [
        f"<module.yaml>: document 1 ({document.splitlines()[0][6:]}): {problem}"
    ]


def test_a_second_playground_ingress_is_refused_at_its_kind() -> None:
    """Its one identifier is taken (the document has no ``id`` to blame)."""
    text = (
        playground_module("http://h/", 8090, 8091)
        + "---\n"
        + "kind: io.statefun.playground.v1/ingress\nspec: {port: 9000}\n"
    )
    with pytest.raises(ModuleError) as refused:
        parse_module(text)
    assert refused.value.problems == [
        "<module.yaml>: document 3 (io.statefun.playground.v1/ingress): kind: ingress "
        "'io.statefun.playground/ingress' is defined twice"
    ]


def egress_answers(
    tmp_path: Path,
    requests: list[tuple[str, dict[str, str]]],
    functions: Optional[StatefulFunctions] = None,
) -> list[tuple[int, str]]:
    """The status and text of each request (method, headers) to the egress' ``greetings``,
    sent in order once what Ann's visit makes the functions (the greeter's) write is stored."""

    async def scenario() -> list[tuple[int, str]]:
        async with playground(tmp_path, functions or greeter_functions()) as (
            runtime, ingress, egress,
        ):  # fmt: skip
            await put(f"{ingress}/example/person/Ann", "Ann")
            await runtime.wait_until_idle()  # all it writes is stored
            answers = []
            async with aiohttp.ClientSession() as session:
                for method, headers in requests:
                    url = f"{egress}/greetings"
                    async with session.request(method, url, headers=headers) as response:
                        answers.append((response.status, await response.text()))
            return answers

    return run(scenario())


def test_a_head_request_on_the_egress_takes_no_record(tmp_path: Path) -> None:
    """A ``HEAD`` (a link checker's, ``curl -I``) gets no body: it must not take the record the
    next ``GET`` is to answer."""
    answers = egress_answers(tmp_path, [("HEAD", {}), ("GET", {})])
    assert answers == [(405, ""), (200, "Ann visit 1")]


def test_another_site_s_page_can_not_take_a_record_from_the_egress(tmp_path: Path) -> None:
    """A ``GET`` of the egress takes a record: one a browser sends for another site's page
    (an ``<img>``, a ``fetch`` in ``no-cors`` mode) is refused, as the runtime refuses such a
    page's ``POST``, and the record stays for the developer's own ``GET``."""
    answers = egress_answers(tmp_path, [
        ("GET", {"Sec-Fetch-Site": "cross-site"}),
        ("GET", {"Origin": "https://elsewhere.example"}),
        ("GET", {"Sec-Fetch-Site": "none"}),  # typed in the address bar
    ])  # fmt: skip
    assert answers == [
        (403, "cross-site request refused (Sec-Fetch-Site)\n"),
        (403, "cross-origin request from 'https://elsewhere.example' refused\n"),
        (200, "Ann visit 1"),
    ]


def test_a_record_posted_for_the_playground_ingress_says_where_it_takes_messages(
    tmp_path: Path,
) -> None:
    """``POST /records/io.statefun.playground/ingress`` (the runtime's way to feed a Kafka or
    Kinesis ingress): refused with where the playground ingress listens, not with the routes
    it does not have."""

    async def scenario() -> tuple[int, str]:
        async with FunctionServer(greeter_functions()) as server:
            module = parse_module(playground_module(server.url, 8090, 8091))
            async with LocalRuntime(module, tmp_path / "db", offline=True) as runtime:
                runner = web.AppRunner(make_app(runtime))
                await runner.setup()
                site = web.TCPSite(runner, "127.0.0.1", 0)
                await site.start()
                try:
                    port = runner.addresses[0][1]  # site.name says port 0 before aiohttp 3.11
                    url = f"http://127.0.0.1:{port}/records/io.statefun.playground/ingress?topic=t&key=k"
                    async with (
                        aiohttp.ClientSession() as session,
                        session.post(
                            url, data=b"{}", headers={"Content-Type": "application/json"}
                        ) as response,
                    ):
                        return response.status, await response.text()
                finally:
                    await runner.cleanup()

    assert run(scenario()) == (
        400,
        "ingress 'io.statefun.playground/ingress' takes no records: it takes messages on its "
        "own port, PUT /<namespace>/<type>/<id> on port 8090\n",
    )


@pytest.mark.parametrize("taken_by", ["ingress", "egress"])
def test_run_with_a_playground_port_in_use_says_which_port_and_stops(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], taken_by: str
) -> None:
    """The runtime's own port is free (``--port 0``): the run ends with code 2 and an error
    that names the playground's port, not with a traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ingress_port, egress_port = (
            (port, free_port()) if taken_by == "ingress" else (free_port(), port)
        )
        module = tmp_path / "module.yaml"
        module.write_text(playground_module("http://127.0.0.1:1/", ingress_port, egress_port))
        code = main(["run", str(module), "--db", str(tmp_path / "db"), "--port", "0",
                     "--offline"])  # fmt: skip
    assert code == 2
    assert capsys.readouterr().err.endswith(
        f"statefun-local: port {port} of 127.0.0.1 is in use (the module's playground ingress "
        "or egress wants it; is another runtime running?)\n"
    )


def test_a_payload_with_a_lone_surrogate_is_given_not_dropped(tmp_path: Path) -> None:
    """JSON may escape half of a surrogate pair (``"\\ud83d"``: Python's ``json.dumps``, as
    the official SDK's JSON types use it, writes one from a str that holds it): the record is
    given with it replaced (``?``, as the image's Java encodes it), not skipped for good."""
    ascii_json = simple_type(
        "io.statefun.playground/EgressRecord",
        serialize_fn=lambda value: json.dumps(value).encode(),  # ensure_ascii: escapes it
        deserialize_fn=json.loads,
    )
    functions = StatefulFunctions()

    @functions.bind("example/person")
    def person(context: Context, message: Message) -> None:
        for payload in ("half \ud83d of a smile", "next"):
            context.send_egress(egress_message_builder(target_typename=PLAYGROUND_EGRESS,
                                value={"topic": "greetings", "payload": payload},
                                value_type=ascii_json))  # fmt: skip

    answers = egress_answers(tmp_path, [("GET", {}), ("GET", {})], functions)
    assert answers == [(200, "half ? of a smile"), (200, "next")]


def test_a_lone_surrogate_in_json_is_written_to_the_jsonl_sink_and_shown_by_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A JSON value's ``"\\ud83d"`` (half of an emoji, as the official SDK's JSON types write
    a str that holds it) reads as a lone surrogate, which no UTF-8 output can write: the
    ``--egress-jsonl`` sink keeps the escape and goes on with the records after it, and the
    CLI's ``egress`` and ``state`` show it escaped instead of stopping with an encoding error."""
    ascii_json = simple_type(
        "io.statefun.playground/EgressRecord",
        serialize_fn=lambda value: json.dumps(value).encode(),  # ensure_ascii: escapes it
        deserialize_fn=json.loads,
    )
    functions = StatefulFunctions()

    @functions.bind("example/person", specs=[ValueSpec("last", ascii_json)])
    def person(context: Context, message: Message) -> None:
        context.storage.last = {"half": "\ud83d"}
        for payload in ("half \ud83d of a smile", "next"):
            context.send_egress(egress_message_builder(target_typename=PLAYGROUND_EGRESS,
                                value={"topic": "greetings", "payload": payload},
                                value_type=ascii_json))  # fmt: skip

    db, sink = tmp_path / "db", tmp_path / "egress.jsonl"

    async def scenario() -> None:
        async with FunctionServer(functions) as server:
            module = parse_module(playground_module(server.url, free_port(), free_port()))
            async with LocalRuntime(module, db, offline=True, egress_jsonl=sink) as runtime:
                await runtime.send(Address("example/person", "Ann"), make_value("string", "x"))
                await runtime.wait_until_idle()
                for _ in range(500):  # ten seconds at most, while the runtime runs
                    if len(sink.read_text(encoding="utf-8").splitlines()) >= 2:
                        break
                    await asyncio.sleep(0.02)

    run(scenario())
    lines = sink.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["record"]["json"]["payload"] for line in lines] == [
        "half \ud83d of a smile",
        "next",
    ]
    assert "half \\ud83d of a smile" in lines[0]
    assert main(["egress", "--db", str(db)]) == 0
    shown = capsys.readouterr().out
    assert "half \\ud83d of a smile" in shown and '"next"' in shown
    assert main(["egress", "--json", "--db", str(db)]) == 0
    assert capsys.readouterr().out.splitlines() == lines
    assert main(["state", "--db", str(db), "example/person/Ann"]) == 0
    assert 'state last: {"json": {"half": "\\ud83d"}}' in capsys.readouterr().out
    assert one_line("a log line's \ud83d") == "a log line's \\ud83d"  # and the logs say so


def test_a_topic_with_a_slash_or_a_brace_is_served_at_its_name(tmp_path: Path) -> None:
    """The image answers ``GET /<topic>`` for any topic of its ``topics``, a ``/`` in it too."""
    functions = StatefulFunctions()

    @functions.bind("example/person")
    def person(context: Context, message: Message) -> None:
        for topic in ("team/a", "{b}"):
            context.send_egress(egress_message_builder(target_typename=PLAYGROUND_EGRESS,
                                value={"topic": topic, "payload": f"to {topic}"},
                                value_type=EGRESS_RECORD))  # fmt: skip

    async def scenario() -> list[tuple[int, str]]:
        ingress_port, egress_port = free_port(), free_port()
        async with FunctionServer(functions) as server:
            text = playground_module(server.url, ingress_port, egress_port)
            module = parse_module(text.replace("- other", "- team/a\n    - '{b}'"))
            async with LocalRuntime(module, tmp_path / "db", offline=True) as runtime:
                runner = web.AppRunner(make_apps(runtime, free_port())[egress_port])
                await runner.setup()
                await web.TCPSite(runner, "127.0.0.1", egress_port).start()
                try:
                    await runtime.send(Address("example/person", "Ann"), make_value("int", 1))
                    await runtime.wait_until_idle()  # both records are stored
                    answers = []
                    async with aiohttp.ClientSession() as session:
                        for path in ("team/a", "{b}", "team/c"):
                            url = f"http://127.0.0.1:{egress_port}/{path}"
                            async with session.get(url) as response:
                                answers.append((response.status, await response.text()))
                    return answers
                finally:
                    await runner.cleanup()

    answers = run(scenario())
    assert answers[:2] == [(200, "to team/a"), (200, "to {b}")]
    assert answers[2][0] == 405, answers
