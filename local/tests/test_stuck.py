"""Stuck addresses: visible, retried, skipped and dead-lettered from the CLI, the HTTP API and
the page; the automatic policy; and all of it survives ``kill -9``.

The runtime runs as a real process (``python -m statefun_local run``) on a real SQLite file,
the function behind a real aiohttp server; the CLI runs as a real process too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any, Optional

import aiohttp
from aiohttp import web
from statefun_local import DeadLetterPolicy, make_app
from statefun_local.stuck import DEFAULT_EGRESS, FAILED_CALL

from statefun_core import (
    Context,
    DeadLetterRecord,
    IntType,
    Message,
    StatefulFunctions,
    StringType,
    ValueSpec,
)
from statefun_core.engine import Address
from statefun_core.testing.endpoint import free_port

from .conftest import FunctionServer, module_yaml, run, serving

FRAGILE = "com.example/fragile"
POISON = "poison"


def fragile_functions() -> StatefulFunctions:
    """Counts the messages it gets; a message starting with ``poison`` always fails (500)."""
    functions = StatefulFunctions()

    @functions.bind(FRAGILE, specs=[ValueSpec("count", IntType)])
    def fragile(context: Context, message: Message) -> None:
        text = message.as_string() or ""
        if text.startswith(POISON):
            raise RuntimeError(f"cannot digest {text}")
        context.storage.count = (context.storage.count or 0) + 1

    return functions


class Runtime:
    """``python -m statefun_local run`` on one database, restartable, its log kept in a file."""

    def __init__(self, module: Path, db: Path, *options: str) -> None:
        self.module, self.db, self.options = module, db, options
        self.process: Optional[asyncio.subprocess.Process] = None
        self.log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.url = ""

    async def start(self) -> None:
        port = free_port()
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "statefun_local", "run", str(self.module), "--db",
            str(self.db), "--port", str(port), "--offline", *self.options,
            stdout=self.log, stderr=self.log,
        )  # fmt: skip
        self.url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            for _ in range(400):
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{self.url}/api/status") as response:
                        if response.status == 200:
                            return
                if self.process.returncode is not None:
                    break
                await asyncio.sleep(0.05)
        raise RuntimeError(f"the runtime did not start:\n{self.output()}")

    async def kill_9(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        await self.process.wait()
        self.process = None

    async def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            await self.process.wait()
            self.process = None

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")


@contextlib.asynccontextmanager
async def running(tmp_path: Path, *options: str) -> AsyncIterator[tuple[FunctionServer, Runtime]]:
    async with FunctionServer(fragile_functions()) as server:
        module = tmp_path / "module.yaml"
        module.write_text(module_yaml(server.url, call="300ms"))
        runtime = Runtime(module, tmp_path / "runtime.db", *options)
        await runtime.start()
        try:
            yield server, runtime
        except BaseException:
            print(f"--- the runtime's log ---\n{runtime.output()}")
            raise
        finally:
            await runtime.stop()
            runtime.log.close()


async def cli(*args: str) -> tuple[int, str]:
    """Run ``statefun-local ARGS`` as a process: (exit code, stdout and stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "statefun_local", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await process.communicate()
    return int(process.returncode or 0), out.decode()


async def send(runtime: Runtime, address: str, text: str) -> None:
    async with aiohttp.ClientSession() as session:
        body = {"type": "string", "value": text}
        async with session.post(f"{runtime.url}/ingress/{address}", json=body) as response:
            assert response.status == 202, await response.text()


async def stuck_by_cli(db: Path) -> dict[str, dict[str, Any]]:
    code, out = await cli("stuck", "--db", str(db), "--json")
    assert code == 0, out
    return {entry["address"]: entry for entry in map(json.loads, out.splitlines())}


async def until_stuck(db: Path, address: str, attempts: int = 1) -> dict[str, Any]:
    for _ in range(600):
        entry = (await stuck_by_cli(db)).get(address)
        if entry is not None and entry["attempts"] >= attempts:
            return entry
        await asyncio.sleep(0.05)
    raise AssertionError(f"{address} did not fail {attempts} time(s)")


async def act_by_cli(runtime: Runtime, action: str, address: str) -> str:
    """``statefun-local ACTION ADDRESS``, again while a call to it is in progress (409)."""
    for _ in range(600):
        code, out = await cli(action, address, "--url", runtime.url)
        if code == 0:
            return out
        assert "being called right now" in out, out
        await asyncio.sleep(0.05)
    raise AssertionError(f"{action} {address} never went through")


async def count_of(db: Path, address: str) -> Optional[int]:
    code, out = await cli("state", address, "--db", str(db))
    assert code == 0, out
    for line in out.splitlines():
        if line.strip().startswith("state count:"):
            return int(line.split(":")[1].split()[0])
    return None


async def until_count(db: Path, address: str, count: int) -> None:
    for _ in range(600):
        if await count_of(db, address) == count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{address} never counted {count}")


async def egress_by_cli(db: Path) -> list[dict[str, Any]]:
    code, out = await cli("egress", "--db", str(db), "--json")
    assert code == 0, out
    return [json.loads(line) for line in out.splitlines()]


async def audit_by_cli(db: Path) -> list[dict[str, Any]]:
    code, out = await cli("audit", "--db", str(db), "--json")
    assert code == 0, out
    return [json.loads(line) for line in out.splitlines()]


def record_of(view: dict[str, Any]) -> DeadLetterRecord:
    """The dead-letter record of an egress view (``egress --json``)."""
    record = view["record"]
    if isinstance(record, dict) and "kafka" in record:
        return DeadLetterRecord.from_json(record["kafka"]["value"].encode())
    return DeadLetterRecord.from_json(json.dumps(record["json"]).encode())


# --- the CLI, across kill -9 ------------------------------------------------------------------


def test_a_stuck_address_from_the_cli_across_kill_9(tmp_path: Path) -> None:
    a, b = f"{FRAGILE}/a", f"{FRAGILE}/b"
    db = tmp_path / "runtime.db"

    async def scenario() -> None:
        async with running(tmp_path) as (_, runtime):
            await send(runtime, a, f"{POISON}-1")
            await send(runtime, a, "after the poison")
            await send(runtime, b, "healthy")
            entry = await until_stuck(db, a)
            assert entry["message_type"] == StringType.typename
            assert entry["caller"] is None
            assert "failed after" in entry["last_error"]
            assert entry["next_retry"] >= entry["last_failed"]
            await until_count(db, b, 1)  # other addresses go on
            assert list(await stuck_by_cli(db)) == [a]
            code, out = await cli("stuck", "--db", str(db))
            assert f"{a}: message #{entry['message_seq']} [{StringType.typename}]" in out
            assert "  last error: POST http://127.0.0.1:" in out

            # kill -9: the stuck address, its attempts and its head message survive
            seen = (await until_stuck(db, a, 2))["attempts"]
            await runtime.kill_9()
            assert (await stuck_by_cli(db))[a]["attempts"] >= seen
            await runtime.start()
            again = await until_stuck(db, a, seen + 1)  # the count goes on
            assert again["message_seq"] == entry["message_seq"]

            # skip: the message after the poison is delivered
            assert "skipped" in await act_by_cli(runtime, "skip", a)
            await until_count(db, a, 1)
            assert a not in await stuck_by_cli(db)

            # dead-letter: the record goes to the default dead-letter egress
            await send(runtime, a, f"{POISON}-2")
            poisoned = await until_stuck(db, a)
            assert "dead-lettered" in await act_by_cli(runtime, "dead-letter", a)
            (dead,) = [v for v in await egress_by_cli(db) if v["egress"] == DEFAULT_EGRESS]
            record = record_of(dead)
            assert (record.function_type, record.function_id) == (FRAGILE, "a")
            assert record.message_typename == StringType.typename
            assert record.message_value == StringType.serializer().serialize(f"{POISON}-2")
            assert record.error_class == FAILED_CALL
            assert "failed after" in record.error_message
            assert record.attempts >= poisoned["attempts"]

            # retry now
            await send(runtime, a, f"{POISON}-3")
            await until_stuck(db, a)
            assert "retrying" in await act_by_cli(runtime, "retry", a)
            code, out = await cli("retry", b, "--url", runtime.url)
            assert code == 1 and f"{b} is not stuck" in out
            await runtime.kill_9()

            # the audit log survives, read from the database with the runtime down
            audit = await audit_by_cli(db)
            assert [(e["action"], e["address"], e["by"]) for e in audit] == [
                ("skip", a, "cli"),
                ("dead-letter", a, "cli"),
                ("retry", a, "cli"),
            ]
            assert audit[0]["message_seq"] == entry["message_seq"]
            assert DEFAULT_EGRESS in audit[1]["detail"]
            code, out = await cli("audit", "--db", str(db))
            assert f"skip {a} message #{entry['message_seq']} by cli" in out
            assert a in await stuck_by_cli(db)  # poison-3 is still there

    run(scenario())


# --- the policy, across kill -9 ---------------------------------------------------------------


def test_the_policy_dead_letters_after_n_attempts_across_kill_9(tmp_path: Path) -> None:
    a = f"{FRAGILE}/a"
    db = tmp_path / "runtime.db"
    egress = ("--dead-letter-egress", "com.example/out", "--dead-letter-topic", "dead-letters")

    async def scenario() -> None:
        # a policy far away, so that kill -9 comes before it, however slow the machine
        async with running(tmp_path, "--dead-letter-after", "1000", *egress) as (_, runtime):
            await send(runtime, a, POISON)
            await send(runtime, a, "after the poison")
            await until_stuck(db, a)
            await runtime.kill_9()
            before = (await stuck_by_cli(db))[a]["attempts"]
            # again with a policy two attempts away: the count goes on from the database
            runtime.options = ("--dead-letter-after", str(before + 2), *egress)
            logged = len(runtime.output())  # read with the runtime down: its log is shared
            await runtime.start()
            await until_count(db, a, 1)
            assert await stuck_by_cli(db) == {}
            (dead,) = [v for v in await egress_by_cli(db) if v["egress"] == "com.example/out"]
            kafka = dead["record"]["kafka"]
            assert (kafka["topic"], kafka["key"]) == ("dead-letters", a)
            record = record_of(dead)
            assert record.attempts == before + 2
            assert record.message_value == StringType.serializer().serialize(POISON)
            await runtime.kill_9()
            assert runtime.output()[logged:].count("message(s) failed") == 2
            (entry,) = await audit_by_cli(db)
            assert (entry["action"], entry["by"]) == ("dead-letter", "policy")
            assert entry["detail"] == f"after {before + 2} attempts, to com.example/out"

    run(scenario())


def test_a_policy_file_sets_attempts_per_function_type(tmp_path: Path) -> None:
    config = tmp_path / "dead-letters.yaml"
    config.write_text(f"after: 50\nfunctions:\n  {FRAGILE}: 2\n  com.example/other: 0\n")
    policy = DeadLetterPolicy.load(config)
    assert (policy.after_for(FRAGILE), policy.after_for("com.example/other")) == (2, None)
    assert policy.after_for("com.example/any") == 50
    target = Address(FRAGILE, "x")

    async def scenario() -> None:
        async with serving(fragile_functions(), tmp_path / "db.sqlite", call="300ms",
                           dead_letters=policy) as (_, runtime):  # fmt: skip
            await runtime.send(target, StringValue(POISON))
            await runtime.wait_until_idle()
            (record,) = runtime.egress_records()
            assert record["egress"] == DEFAULT_EGRESS
            (entry,) = runtime.audit_log()
            assert entry["detail"] == f"after 2 attempts, to {DEFAULT_EGRESS}"

    run(scenario())


def test_a_policy_naming_an_egress_the_module_lacks_fails_at_start(tmp_path: Path) -> None:
    module = tmp_path / "module.yaml"
    module.write_text(module_yaml("http://127.0.0.1:1/statefun"))
    for flags, problem in [
        (["--dead-letter-egress", "com.example/nope"], "no egress 'com.example/nope'"),
        (["--dead-letter-egress", "com.example/out"], "is a Kafka egress; name its topic"),
    ]:
        code, out = run(cli("run", str(module), "--db", str(tmp_path / "x.db"), *flags))
        assert code == 2 and problem in out, out


def StringValue(text: str) -> Any:
    from statefun_local import make_value

    return make_value("string", text)


# --- the HTTP API ------------------------------------------------------------------------------


def test_the_http_api_lists_and_acts(tmp_path: Path) -> None:
    target = Address(FRAGILE, "a/with/slashes")

    async def scenario() -> None:
        async with serving(fragile_functions(), tmp_path / "db.sqlite", call="300ms",
                           failure_pause=30) as (_, runtime):  # fmt: skip
            app_runner = web.AppRunner(make_app(runtime))
            await app_runner.setup()
            port = free_port()
            await web.TCPSite(app_runner, "127.0.0.1", port).start()
            url = f"http://127.0.0.1:{port}"
            try:
                async with aiohttp.ClientSession() as session:
                    await runtime.send(target, StringValue(POISON))
                    await runtime.send(target, StringValue("fine"))
                    while not runtime.stuck():
                        await asyncio.sleep(0.02)
                    async with session.get(f"{url}/api/stuck") as response:
                        (entry,) = (await response.json())["stuck"]
                    assert entry["address"] == str(target) and entry["attempts"] == 1
                    async with session.get(f"{url}/api/status") as response:
                        assert (await response.json())["stuck"] == [entry]
                    # the runtime waits 30 s before its retry: act while it waits
                    while str(target) not in {str(a) for a in runtime._waiting}:
                        await asyncio.sleep(0.02)
                    path = f"{url}/api/stuck/skip/{target}"
                    # the guard: what another site's page could send changes nothing
                    for refused, status in [
                        ({"Content-Type": "text/plain"}, 415),
                        ({"Content-Type": "application/json", "Origin": "http://evil.test"}, 403),
                    ]:
                        async with session.post(path, headers=refused, data=b"{}") as response:
                            assert response.status == status, await response.text()
                    assert runtime.stuck() and runtime.audit_log() == []
                    async with session.post(path, json={}) as response:
                        assert response.status == 200, await response.text()
                        assert await response.json() == {"address": str(target),
                                                         "done": "skipped"}  # fmt: skip
                    await runtime.wait_until_idle()
                    assert runtime.inspect(target)["state"]["count"]["value"] == 1
                    async with session.post(path) as response:
                        assert response.status == 404
                        assert "is not stuck" in await response.text()
                    async with session.post(f"{url}/api/stuck/burn/{target}") as response:
                        assert response.status == 404
                    async with session.get(f"{url}/api/audit") as response:
                        (logged,) = (await response.json())["audit"]
                    assert (logged["action"], logged["by"]) == ("skip", "api")

                    # dead-letter: the head message goes to the dead-letter egress
                    await runtime.send(target, StringValue(f"{POISON}-again"))
                    while str(target) not in {str(a) for a in runtime._waiting}:
                        await asyncio.sleep(0.02)
                    path = f"{url}/api/stuck/dead-letter/{target}?by=ops"
                    async with session.post(path, json={}) as response:
                        assert response.status == 200, await response.text()
                        assert (await response.json())["done"] == "dead-lettered"
                    (dead,) = runtime.egress_records()
                    assert dead["egress"] == DEFAULT_EGRESS
                    record = DeadLetterRecord.from_json(json.dumps(dead["record"]["json"]).encode())
                    assert (record.function_type, record.function_id) == (FRAGILE, target.id)
                    assert record.message_value == StringType.serializer().serialize(
                        f"{POISON}-again"
                    )
                    assert runtime.stuck() == []
                    async with session.get(f"{url}/api/audit") as response:
                        newest = (await response.json())["audit"][0]
                    assert (newest["action"], newest["by"]) == ("dead-letter", "ops")
            finally:
                await app_runner.cleanup()

    run(scenario())


# --- the SDK's final failures on statefun-local ------------------------------------------------


def test_an_sdk_final_failure_mid_batch_keeps_the_rest_of_the_batch(tmp_path: Path) -> None:
    from statefun_core import DeadLetterEgress, FinalFailure, kafka_egress_message

    functions = StatefulFunctions()
    egress = DeadLetterEgress("com.example/out", topic="dead-letters")

    @functions.bind("com.example/summer", specs=[ValueSpec("sum", IntType)], dead_letters=egress)
    def summer(context: Context, message: Message) -> None:
        n = message.as_int()
        context.storage.sum = (context.storage.sum or 0) + n
        context.send_egress(kafka_egress_message("com.example/out", "sums", str(n)))
        if n == 3:
            raise FinalFailure("three is right out")

    target = Address("com.example/summer", "s")

    async def scenario() -> None:
        async with serving(functions, tmp_path / "db.sqlite") as (server, runtime):
            # no await between them: 1 goes alone to the idle address, 2 to 5 are its next batch
            for n in range(1, 6):
                runtime.engine.send(target, make_int(n))
            runtime._wake.set()
            await runtime.wait_until_idle()
            assert runtime.inspect(target)["state"]["sum"]["value"] == 1 + 2 + 4 + 5
            records = [r["record"]["kafka"] for r in runtime.egress_records()]
            assert [r["value"] for r in records if r["topic"] == "sums"] == ["1", "2", "4", "5"]
            (dead,) = [r for r in records if r["topic"] == "dead-letters"]
            record = DeadLetterRecord.from_json(dead["value"].encode())
            assert record.message_value == IntType.serializer().serialize(3)
            assert record.error_message == "three is right out"
            assert runtime.stuck() == [] and list(runtime.failures) == []
            assert server.requests == 3  # the state-discovery round, 1, then 2 to 5

    run(scenario())


def make_int(n: int) -> Any:
    from statefun_local import make_value

    return make_value("int", n)
