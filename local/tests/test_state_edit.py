"""Setting and deleting an address's state by hand: from the CLI through a running runtime (a
real ``statefun-local run`` process) and without one (into the SQLite file), from the HTTP API;
each refusal changes nothing, each edit has its audit entry, and the function reads the value.
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path
from typing import Any, Optional

import aiohttp
import pytest
from statefun_local import LocalRuntime, parse_module
from statefun_local.cli import main
from statefun_local.runtime import unless_runtime_runs

from statefun_core import (
    Context,
    IntType,
    Message,
    StatefulFunctions,
    StringType,
    ValueSpec,
    make_json_type,
)
from statefun_core.engine import Address, ManualClock, TypedValue

from .conftest import FunctionServer, module_yaml, run, serving
from .test_server_and_cli import serve_runtime
from .test_stuck import (
    HeldServer,
    audit_by_cli,
    cli,
    running,
    soon,
    until_count,
)

COUNTER = "com.example/counter"
Profile = make_json_type("com.example/Profile")
#: a count above this overflows: the function fails on it (an address stuck on its value)
LIMIT = 1000


def counter_functions() -> StatefulFunctions:
    """Counts its messages (``seen``: the count it read); greets the ``profile``'s name."""
    functions = StatefulFunctions()

    @functions.bind(
        COUNTER,
        specs=[
            ValueSpec("count", IntType),
            ValueSpec("seen", IntType),
            ValueSpec("profile", Profile),
            ValueSpec("greeting", StringType),
        ],
    )
    def counter(context: Context, message: Message) -> None:
        count = context.storage.count or 0
        if count > LIMIT:
            raise RuntimeError(f"count {count} overflows")
        context.storage.seen = count
        context.storage.count = count + 1
        if context.storage.profile is not None:
            context.storage.greeting = f"hi {context.storage.profile['name']}"

    return functions


def string(text: str) -> TypedValue:
    return TypedValue(StringType.typename, StringType.serializer().serialize(text))


async def state_by_cli(db: Path, address: str) -> dict[str, Any]:
    """The address's state values, as ``state`` shows them (not the declared states it shows
    with no value)."""
    code, out = await cli("state", address, "--db", str(db))
    assert code == 0, out
    values = {}
    for line in out.splitlines():
        if line.startswith("  state ") and ":" in line:
            name, shown = line[len("  state ") :].split(": ", 1)
            shown = shown.rsplit("  [", 1)[0]
            if shown == "(no value)":
                continue
            try:
                values[name] = json.loads(shown)
            except ValueError:  # a string is shown as it is
                values[name] = shown
    return values


async def send_by_cli(url: str, address: str) -> None:
    code, out = await cli("send", address, "--string", "hello", "--url", url)
    assert code == 0, out


def test_the_cli_edits_state_through_the_runtime_and_without_one(tmp_path: Path) -> None:
    a = f"{COUNTER}/a"
    db = tmp_path / "runtime.db"

    async def edit(*options: str, url: Optional[str] = None) -> tuple[int, str]:
        through = [] if url is None else ["--url", url]
        return await cli("state", a, "--db", str(db), *through, *options)

    async def scenario() -> None:
        async with running(tmp_path, server=FunctionServer(counter_functions())) as (_, runtime):
            await send_by_cli(runtime.url, a)
            await until_count(db, a, 1)  # its function declared its states: they can be set

            code, out = await edit("--set", "count=99", url=runtime.url)
            assert code == 0, out
            assert out.startswith(f"{a}: edited by the runtime (set count = 99 (was 1))\n")
            assert "  state count: 99  [io.statefun.types/int]" in out  # then shown
            await send_by_cli(runtime.url, a)
            await until_count(db, a, 100)
            assert (await state_by_cli(db, a))["seen"] == 99  # the function read it

            # refused: nothing changed, nothing in the audit log
            for options, code_wanted, problem in [
                (["--set", "nope=1"], 1, f"{COUNTER} declares no state 'nope' (it declares "
                                         "count, greeting, profile, seen)"),
                (["--set", "count=1.5"], 1, "state 'count' (io.statefun.types/int): 1.5 is not "
                                            "a valid io.statefun.types/int"),
                (["--set", "count=2147483648"], 1, "does not fit io.statefun.types/int"),
                (["--set", 'profile={"name": "Bo"}'], 1,
                 "state 'profile' is a com.example/Profile, whose encoding this runtime does "
                 'not know: give {"json": <value>} if its values are JSON text'),
                (["--set", "count=abc"], 2, "--set count: 'abc' is not JSON"),
                (["--set", "count=1", "--set", "count=2"], 2, "--set count is given twice"),
                (["--set", "count=5", "--delete", "count"], 1, "'count' is both set and deleted"),
                (["--delete", "nope"], 1, f"{a} has no state 'nope' to delete"),
            ]:  # fmt: skip
                code, out = await edit(*options, url=runtime.url)
                assert (code, problem in out) == (code_wanted, True), out
            assert len(await audit_by_cli(db)) == 1
            assert (await state_by_cli(db, a))["count"] == 100

            # a type the runtime has no serializer of: as shown, JSON text or bytes
            code, out = await edit("--set", 'profile={"json": {"name": "Bo"}}', url=runtime.url)
            assert code == 0, out
            await send_by_cli(runtime.url, a)
            await until_count(db, a, 101)
            assert (await state_by_cli(db, a))["greeting"] == "hi Bo"
            raw = base64.b64encode(b'{"name": "Cy"}').decode()
            code, out = await edit("--set", f'profile={{"base64": "{raw}"}}', url=runtime.url)
            assert code == 0, out
            assert (await state_by_cli(db, a))["profile"] == {"json": {"name": "Cy"}}

            # no runtime: written into the database (the --url, where none listens, not asked)
            await runtime.stop()
            code, out = await edit("--set", "count=5", "--delete", "seen", "--delete", "greeting",
                                   url=runtime.url)  # fmt: skip
            assert code == 0, out
            assert out.startswith(
                f"{a}: edited (set count = 5 (was 101); deleted seen (was 100); deleted "
                'greeting (was "hi Bo"))\n'
            ), out
            # still declared, shown without a value, among the others by name
            assert out.splitlines()[2:6] == [
                "  state count: 5  [io.statefun.types/int]",
                "  state greeting: (no value)  [io.statefun.types/string]",
                '  state profile: {"json": {"name": "Cy"}}  [com.example/Profile]',
                "  state seen: (no value)  [io.statefun.types/int]",
            ], out
            assert await state_by_cli(db, a) == {"count": 5, "profile": {"json": {"name": "Cy"}}}
            code, out = await edit("--set", "nope=1")
            assert code == 1 and f"{COUNTER} declares no state 'nope'" in out

            audit = await audit_by_cli(db)
            assert [(e["action"], e["address"], e["by"], e["message_seq"]) for e in audit] == [
                ("edit-state", a, "cli", None)
            ] * 4
            assert audit[0]["detail"] == "set count = 99 (was 1)"
            assert audit[1]["detail"] == 'set profile = {"json": {"name": "Bo"}} (it had no value)'
            code, out = await cli("audit", "--db", str(db))
            assert f" edit-state {a} by cli (set count = 99 (was 1))\n" in out

            # the runtime started again forgets the specs, finds them anew, and sends the value
            await runtime.start()
            await send_by_cli(runtime.url, a)
            await until_count(db, a, 6)
            assert (await state_by_cli(db, a))["seen"] == 5

    run(scenario())


def test_a_value_an_address_is_stuck_on_is_repaired_and_its_retry_carries_it(
    tmp_path: Path,
) -> None:
    """Waiting for its retry, a stuck address is not being called: its state can be edited
    (here by the CLI, a process, through the runtime in this process), and the retry sends the
    new value."""
    target = Address(COUNTER, "a")
    a = str(target)
    db = tmp_path / "runtime.db"

    async def scenario() -> None:
        # a pause before each retry long enough for the test to act in it
        async with serving(counter_functions(), db, call="300ms", failure_pause=60) as (
            _,
            runtime,
        ):
            runner, url = await serve_runtime(runtime)
            try:
                await runtime.send(target, string("1"))
                await runtime.wait_until_idle()
                runtime.edit_state(target, {"count": LIMIT + 1}, [], "me")
                await runtime.send(target, string("2"))
                await soon(lambda: target in runtime._waiting)  # failed, waiting for its retry
                code, out = await cli("state", a, "--db", str(db), "--url", url,
                                      "--set", "count=7")  # fmt: skip
                assert code == 0, out
                assert runtime.retry_now(target, "me").done == "retrying"
                await runtime.wait_until_idle()
                state = runtime.inspect(target)["state"]
                assert (state["count"]["value"], state["seen"]["value"]) == (8, 7)
                assert runtime.stuck() == []
            finally:
                await runner.cleanup()

    run(scenario())


def test_the_http_api_edits_state_and_refuses_what_it_can_not_do(tmp_path: Path) -> None:
    target = Address(COUNTER, "a/b")  # a slash in the id: given as ?id=
    db = tmp_path / "runtime.db"

    async def scenario() -> None:
        async with HeldServer(counter_functions()) as server:
            module = parse_module(module_yaml(server.url, call="60s"))
            async with LocalRuntime(module, db, failure_pause=0.05, offline=True) as runtime:
                runner, url = await serve_runtime(runtime)
                try:
                    async with aiohttp.ClientSession() as session:

                        async def edit(
                            body: Any, headers: Optional[dict[str, str]] = None, **query: str
                        ) -> tuple[int, Any]:
                            async with session.post(
                                f"{url}/api/state/{COUNTER}",
                                params={"id": target.id, **query},
                                data=body if isinstance(body, str) else json.dumps(body),
                                headers={"Content-Type": "application/json", **(headers or {})},
                            ) as response:
                                if response.status == 200:
                                    return 200, await response.json()
                                return response.status, await response.text()

                        def count() -> Any:
                            return runtime.inspect(target)["state"].get("count", {}).get("value")

                        status, text = await edit({"set": {"count": 5}})
                        assert status == 400
                        assert f"{COUNTER} has registered no state since the runtime last " in text

                        await runtime.send(target, string("1"))
                        await runtime.wait_until_idle()
                        assert await edit({"set": {"count": 5}}, by="ops") == (200, {
                            "address": str(target), "done": "edited",
                            "detail": "set count = 5 (was 1)"})  # fmt: skip
                        assert runtime.audit_log()[0]["by"] == "ops"

                        # while a batch of it is being called: refused, nothing changed
                        await runtime.send(target, string("2"))
                        await server.hold_next()
                        status, text = await edit({"set": {"count": 40}})
                        assert status == 409
                        assert "a batch of it is being called, with its state as it was" in text
                        server.release_all()
                        await runtime.wait_until_idle()
                        assert (count(), runtime.inspect(target)["state"]["seen"]["value"]) == (
                            6,
                            5,
                        )
                        assert len(runtime.audit_log()) == 1

                        # what a page on another site could make a browser send, and bad bodies
                        for body, headers, wanted in [
                            ({"set": {"count": 1}}, {"Origin": "http://evil.example"}, 403),
                            ({"set": {"count": 1}}, {"Content-Type": "text/plain"}, 415),
                            ({"set": {"count": 1}}, {"Host": "evil.example"}, 403),
                            ("not json", None, 400),
                            ({"set": [1]}, None, 400),
                            ({"put": {}}, None, 400),
                            ({}, None, 400),
                            ({"set": {"count": "x"}}, None, 400),
                        ]:
                            assert (await edit(body, headers))[0] == wanted, body
                        status, text = await edit({"set": {"count": 1}}, db=str(tmp_path / "x"))
                        assert status == 409 and f"this runtime runs on {db}, not on" in text
                        assert count() == 6 and len(runtime.audit_log()) == 1

                        status, _ = await edit({"delete": ["count"]}, db=str(db))
                        assert status == 200 and count() is None
                        async with session.post(  # the id in the path, as GET takes it
                            f"{url}/api/state/{COUNTER}/a/b", json={"set": {"count": 3}}
                        ) as response:
                            assert response.status == 200, await response.text()
                        assert count() == 3
                finally:
                    await runner.cleanup()

    run(scenario())


def test_the_http_api_names_the_declared_states_an_address_has_no_value_of(
    tmp_path: Path,
) -> None:
    """``without_value``: the states an edit can set at an address that holds no value of them
    (the page's Set buttons), each with its type; not known (``null``) before the function has
    answered since the runtime started, as an edit is refused then."""
    db = tmp_path / "runtime.db"
    target = Address(COUNTER, "new")

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:

            async def view(url: str) -> Any:
                async with session.get(
                    f"{url}/api/state/{COUNTER}", params={"id": target.id}
                ) as response:
                    assert response.status == 200, await response.text()
                    return await response.json()

            async with serving(counter_functions(), db) as (_, runtime):
                runner, url = await serve_runtime(runtime)
                try:
                    assert (await view(url))["without_value"] is None
                    await runtime.send(Address(COUNTER, "other"), string("1"))
                    await runtime.wait_until_idle()
                    fresh = await view(url)
                    assert fresh["state"] == {}
                    assert fresh["without_value"] == {
                        "count": {"type": IntType.typename},
                        "greeting": {"type": StringType.typename},
                        "profile": {"type": Profile.typename},
                        "seen": {"type": IntType.typename},
                    }
                    async with session.post(
                        f"{url}/api/state/{COUNTER}/{target.id}",
                        json={"set": {"profile": {"json": {"name": "Bo"}}, "count": 7}},
                    ) as response:
                        assert response.status == 200, await response.text()
                    edited = await view(url)
                    assert list(edited["state"]) == ["count", "profile"]
                    assert list(edited["without_value"]) == ["greeting", "seen"]
                    runtime.edit_state(target, {}, ["count"], "me")
                    assert list((await view(url))["without_value"]) == ["count", "greeting", "seen"]
                finally:
                    await runner.cleanup()
            # restarted, the runtime has forgotten the specs until the function answers again
            async with serving(counter_functions(), db) as (_, runtime):
                runner, url = await serve_runtime(runtime)
                try:
                    restarted = await view(url)
                    assert list(restarted["state"]) == ["profile"]
                    assert restarted["without_value"] is None
                finally:
                    await runner.cleanup()

    run(scenario())


def test_a_value_set_lives_as_long_as_one_its_function_writes(tmp_path: Path) -> None:
    """``expire_after_write``: the edit is a write, as the function's own: its time to live
    starts at the edit."""
    functions = StatefulFunctions()
    read: list[Optional[int]] = []

    @functions.bind(
        "com.example/fn",
        specs=[ValueSpec("count", IntType, expire_after_write=timedelta(seconds=10))],
    )
    def fn(context: Context, message: Message) -> None:
        read.append(context.storage.count)
        if message.as_string() == "write":
            context.storage.count = 1

    async def scenario() -> None:
        clock = ManualClock(1_000_000)
        async with serving(functions, tmp_path / "db.sqlite", clock=clock) as (_, runtime):
            target = Address("com.example/fn", "x")
            await runtime.send(target, string("write"))
            await runtime.wait_until_idle()
            clock.advance(9_000)
            runtime.edit_state(target, {"count": 42}, [], "me")
            clock.advance(9_000)  # 18 s after the function's write, 9 s after the edit
            await runtime.send(target, string("read"))
            await runtime.wait_until_idle()
            clock.advance(10_000)
            await runtime.send(target, string("read"))
            await runtime.wait_until_idle()
            assert read == [None, 42, None]

    run(scenario())


def test_the_cli_refuses_an_edit_of_a_database_that_is_not_there(
    tmp_path: Path, capsys: Any
) -> None:
    db = tmp_path / "missing.db"
    assert main(["state", f"{COUNTER}/a", "--db", str(db), "--set", "count=1"]) == 2
    assert f"no database at {db}" in capsys.readouterr().err
    assert not db.exists()


def test_no_runtime_starts_on_the_database_while_the_cli_writes_it(tmp_path: Path) -> None:
    """The CLI's edit without a runtime holds the lock a runtime takes to start: none can start
    in its middle and call the address with the state as it was."""
    db = tmp_path / "runtime.db"

    async def scenario() -> None:
        async with serving(counter_functions(), db) as (_, runtime):
            with unless_runtime_runs(db) as free:
                assert not free  # it runs
        with unless_runtime_runs(db) as free:
            assert free
            with pytest.raises(RuntimeError, match="another statefun-local is running on"):
                async with serving(counter_functions(), db):
                    pass
        async with serving(counter_functions(), db) as (_, runtime):  # once it has ended
            assert runtime.store is not None

    run(scenario())
