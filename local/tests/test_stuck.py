"""Stuck addresses: visible, retried, skipped and dead-lettered from the CLI, the HTTP API and
the page; the automatic policy; and all of it survives ``kill -9``.

The runtime runs as a real process (``python -m statefun_local run``) on a real SQLite file,
the function behind a real aiohttp server; the CLI runs as a real process too.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import signal
import sqlite3
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any, Optional

import aiohttp
import pytest
from aiohttp import web
from statefun_local import DeadLetterPolicy, LocalRuntime, make_app, make_value, parse_module
from statefun_local.cli import main
from statefun_local.store import SCHEMA_VERSION, SqliteStore
from statefun_local.stuck import (
    DEFAULT_EGRESS,
    FAILED_CALL,
    NotStuckError,
    Outcome,
    PolicyError,
)

from statefun_core import (
    Context,
    DeadLetterEgress,
    DeadLetterRecord,
    IntType,
    Message,
    StatefulFunctions,
    StringType,
    ValueSpec,
    message_builder,
)
from statefun_core.engine import Address, EgressRecord, ManualClock
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
    """``python -m statefun_local run`` on one database, restartable, its log kept in a file;
    stopped by its PID (by ``stop``, and by ``start`` when it does not start). Without ``db``,
    no ``--db`` is given (``env``: the process' environment variables, besides ours; ``cwd``:
    its directory; ``port``: its port, a free one by default).

    ``async with Runtime(...) as runtime:`` stops it at the end of the block and prints its
    log (for pytest to show) if the block fails."""

    def __init__(
        self,
        module: Path,
        db: Optional[Path],
        *options: str,
        env: Optional[dict[str, str]] = None,
        cwd: Optional[Path] = None,
        port: Optional[int] = None,
    ) -> None:
        self.module, self.db, self.options = module, db, options
        self.env, self.cwd, self.port = env, cwd, port
        self.process: Optional[asyncio.subprocess.Process] = None
        self.log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed at the end
        self.url = ""

    async def __aenter__(self) -> Runtime:
        return self

    async def __aexit__(self, kind: Optional[type[BaseException]], *_: object) -> None:
        if kind is not None:
            print(f"--- the runtime's log ---\n{self.output()}")
        await self.stop()
        self.log.close()

    async def start(self) -> None:
        port = self.port or free_port()
        db = [] if self.db is None else ["--db", str(self.db)]
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "statefun_local", "run", str(self.module), *db,
            "--port", str(port), "--offline", *self.options,
            stdout=self.log, stderr=self.log, env={**os.environ, **(self.env or {})},
            cwd=self.cwd, stdin=asyncio.subprocess.DEVNULL,
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
        await self.stop()
        raise RuntimeError(f"the runtime did not start:\n{self.output()}")

    async def kill_9(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        await self.process.wait()
        self.process = None

    async def stop(self) -> Optional[int]:
        """Terminate the runtime (SIGKILL if it lingers 30 s): its exit code, if it ran."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 30)
            except asyncio.TimeoutError:
                process.kill()
        return await process.wait()

    def output(self) -> str:
        # pread, not seek and read: the runtime writes at this file's offset, which it shares
        fd = self.log.fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path, *options: str, server: Optional[FunctionServer] = None, call: str = "300ms"
) -> AsyncIterator[tuple[FunctionServer, Runtime]]:
    """The runtime on ``runtime.db``, calling ``server`` (default: the fragile functions)."""
    async with server or FunctionServer(fragile_functions()) as server:
        module = tmp_path / "module.yaml"
        module.write_text(module_yaml(server.url, call=call))
        async with Runtime(module, tmp_path / "runtime.db", *options) as runtime:
            await runtime.start()
            yield server, runtime


async def cli(
    *args: str, env: Optional[dict[str, str]] = None, cwd: Optional[Path] = None
) -> tuple[int, str]:
    """Run ``statefun-local ARGS`` as a process (``env``: environment variables besides ours,
    ``cwd``: its directory): (exit code, stdout and stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "statefun_local", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **(env or {})}, cwd=cwd,
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
    """The address's entry once ``attempts`` of its calls failed, as the last of them left it:
    not while its next call is retried, whose failed attempts write their own last error."""
    for _ in range(600):
        entry = (await stuck_by_cli(db)).get(address)
        if entry is not None and entry["attempts"] >= attempts and not entry["call_attempts"]:
            return entry
        await asyncio.sleep(0.05)
    raise AssertionError(f"{address} did not fail {attempts} time(s)")


async def until_retried(db: Path, address: str, runtime: Runtime) -> dict[str, Any]:
    """The address's entry once its call in progress has failed twice (listed as stuck from
    its first failed attempt, written at most once a second after it)."""
    for _ in range(600):
        entry = (await stuck_by_cli(db)).get(address)
        if entry is not None and entry["call_attempts"] >= 2:
            return entry
        await asyncio.sleep(0.05)
    raise AssertionError(f"{address} was not listed as stuck:\n{runtime.output()}")


async def soon(condition: Any) -> None:
    """Until ``condition()`` holds, ten seconds at most (a runtime in this process)."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the condition did not hold within 10 s")


DONE = {"retry": "retrying", "skip": "skipped", "dead-letter": "dead-lettered"}


async def act_by_cli(runtime: Runtime, action: str, address: str, *options: str) -> str:
    """``statefun-local ACTION ADDRESS``, and what it did: ``retrying``, ``skipped`` or
    ``dead-lettered``. A skip or dead-letter asked for while a call to the address is in
    progress is pending until that call ends: then what the audit log says (``not done`` if
    that call succeeded)."""
    assert runtime.db is not None
    logged = len(await audit_by_cli(runtime.db))
    code, out = await cli(action, address, "--url", runtime.url, *options)
    assert code == 0, out
    if not out.startswith(f"{address}: {action} pending: "):
        assert out.startswith(f"{address}: {DONE[action]}"), out
        return DONE[action]
    for _ in range(600):
        audit = await audit_by_cli(runtime.db)
        if len(audit) > logged:
            entry = audit[-1]
            assert (entry["action"], entry["address"], entry["by"]) == (action, address, "cli")
            return "not done" if entry["detail"].startswith("not done") else DONE[action]
        await asyncio.sleep(0.05)
    raise AssertionError(f"the pending {action} of {address} was never done")


async def count_of(db: Path, address: str) -> Optional[int]:
    code, out = await cli("state", address, "--db", str(db))
    assert code == 0, out
    for line in out.splitlines():
        if line.strip().startswith("state count:"):
            value = line.split(":")[1].split("[")[0].strip()
            return None if value == "(no value)" else int(value)
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


def test_an_address_is_stuck_from_its_first_failed_attempt_while_its_call_is_retried(
    tmp_path: Path,
) -> None:
    """Within a long call budget (60 s here, a minute by default), a head message that keeps
    failing is listed as stuck at once, with the failed attempts of the call in progress and
    the last error, not only once the budget is spent; its delivery ends it."""
    a = f"{FRAGILE}/a"
    db = tmp_path / "runtime.db"
    healed = False

    def broken(_: int) -> Optional[web.StreamResponse]:
        return None if healed else web.Response(status=500, text="broken for now")

    async def scenario() -> None:
        nonlocal healed
        server = FunctionServer(fragile_functions(), broken)
        async with running(tmp_path, server=server, call="60s") as (_, runtime):
            await send(runtime, a, "first")
            entry = await until_retried(db, a, runtime)
            assert entry["attempts"] == 0  # no call has failed for good yet
            assert "HTTP 500" in entry["last_error"] and "broken for now" in entry["last_error"]
            code, out = await cli("stuck", "--db", str(db))
            assert code == 0
            assert (f"{a}: message #{entry['message_seq']} [{StringType.typename}], 0 attempt(s), "
                    "being retried now (") in out  # fmt: skip
            healed = True
            await until_count(db, a, 1)
            assert a not in await stuck_by_cli(db)

    run(scenario())


def test_a_calls_failed_attempts_are_all_shown_and_written_at_most_once_a_second(
    tmp_path: Path,
) -> None:
    """While a function server is down, each address's call fails again and again, its first
    attempts in a burst (the backoff starts at 2 ms). Each one is shown (the API, the page),
    but the database is written at the call's first failed attempt (listed as stuck), then at
    most once a second of the runtime's clock (held still here), and when the call fails for
    good: a restart needs none of the attempts in between."""
    a = Address(FRAGILE, "a")
    db = tmp_path / "db.sqlite"
    clock = ManualClock(1_000_000)
    writes: list[str] = []

    def unavailable(_: int) -> web.StreamResponse:
        return web.Response(status=503, text="down for now")

    def trace(sql: str) -> None:
        if sql.startswith("UPDATE stuck SET call_attempts"):  # a failed attempt written
            writes.append(sql)

    def written() -> tuple[int, int]:
        """(attempts, call_attempts) as the database has them."""
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            return conn.execute("SELECT attempts, call_attempts FROM stuck").fetchone()

    def shown(attempts: int, call_attempts: int) -> bool:
        entries = runtime.stuck()
        return (
            bool(entries)
            and entries[0]["attempts"] >= attempts
            and (entries[0]["call_attempts"] >= call_attempts)
        )

    async def scenario() -> None:
        nonlocal runtime
        async with serving(fragile_functions(), db, fault=unavailable, call="5s",
                           failure_pause=600, clock=clock) as (server, runtime):  # fmt: skip
            runtime.store.conn.set_trace_callback(trace)
            await runtime.send(a, make_value("string", "x"))
            while not shown(1, 0):  # the call failed for good (5 s)
                await asyncio.sleep(0.05)
            assert server.requests >= 3
            assert len(writes) == 1, writes  # its first failed attempt only
            assert written() == (1, 0)

            runtime.retry_now(a, "test")  # the next call: its attempts shown as they fail
            await soon(lambda: shown(1, 2))
            assert "HTTP 503: down for now" in runtime.stuck()[0]["last_error"]
            assert written() == (1, 1)  # the database: its first failed attempt only
            clock.advance(1000)
            await soon(lambda: written()[1] >= 2)

    runtime: Any = None
    run(scenario())


def test_a_call_the_runtime_stopped_during_is_not_shown_being_retried(tmp_path: Path) -> None:
    """Stopped while a call was being retried, the runtime leaves the address stuck with its
    last error, but no call in progress: the CLI does not say "being retried now" while no
    runtime runs (the next start sends the batch again, in a new call)."""
    a = f"{FRAGILE}/a"
    db = tmp_path / "runtime.db"

    def broken(_: int) -> web.StreamResponse:
        return web.Response(status=500, text="broken for now")

    async def scenario() -> None:
        server = FunctionServer(fragile_functions(), broken)
        async with running(tmp_path, server=server, call="60s") as (_, runtime):
            await send(runtime, a, "first")
            entry = await until_retried(db, a, runtime)
            await runtime.stop()
            assert "Traceback" not in runtime.output()
        entry = (await stuck_by_cli(db))[a]
        assert (entry["attempts"], entry["call_attempts"]) == (0, 0)
        assert "broken for now" in entry["last_error"]
        code, out = await cli("stuck", "--db", str(db))
        assert code == 0
        assert "being retried now" not in out

    run(scenario())


def test_after_a_kill_9_during_a_retried_call_the_cli_says_no_runtime_runs(
    tmp_path: Path,
) -> None:
    """Killed with -9 while a call was being retried, the runtime can not write that the call
    ended: the CLI, reading the database, said "being retried now" while nothing retried it.
    Now it sees that no runtime holds the database's lock, and says so: the call was being
    retried when the runtime stopped, nothing is retried until one starts."""
    a = f"{FRAGILE}/a"
    db = tmp_path / "runtime.db"

    def broken(_: int) -> web.StreamResponse:
        return web.Response(status=500, text="broken for now")

    async def scenario() -> None:
        server = FunctionServer(fragile_functions(), broken)
        async with running(tmp_path, server=server, call="60s") as (_, runtime):
            await send(runtime, a, "first")
            await until_retried(db, a, runtime)
            code, out = await cli("stuck", "--db", str(db))
            assert code == 0 and "being retried now (" in out
            assert "no runtime is running" not in out

            await runtime.kill_9()
            code, out = await cli("stuck", "--db", str(db))
            assert code == 0
            assert "being retried now" not in out
            assert out.startswith(f"no runtime is running on {db}: nothing is retried until "
                                  "one starts\n")  # fmt: skip
            entry = (await stuck_by_cli(db))[a]
            assert entry["call_attempts"] == 0  # no call in progress
            assert (f"{a}: message #{entry['message_seq']} [{StringType.typename}], 0 attempt(s), "
                    "its call was being retried when the runtime stopped (") in out  # fmt: skip
            assert f"the last at {entry['last_failed']})" in out

            await runtime.start()  # the batch is sent again, in a new call
            await until_retried(db, a, runtime)
            code, out = await cli("stuck", "--db", str(db))
            assert code == 0 and "being retried now (" in out
            assert "no runtime is running" not in out

    run(scenario())


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
            # the call's last error, or that of an attempt of the next call, retried meanwhile
            (_, last_error) = out.split("  last error: ", 1)
            assert "HTTP 500: Internal Server Error: the function failed" in last_error

            # kill -9: the stuck address, its attempts and its head message survive
            seen = (await until_stuck(db, a, 2))["attempts"]
            await runtime.kill_9()
            assert (await stuck_by_cli(db))[a]["attempts"] >= seen
            await runtime.start()
            again = await until_stuck(db, a, seen + 1)  # the count goes on
            assert again["message_seq"] == entry["message_seq"]

            # skip: asked for another head message than the one listed, nothing is done
            seq = again["message_seq"]
            code, out = await cli("skip", a, "--url", runtime.url, "--message", str(seq + 1))
            assert code == 1
            assert f"its failing head message is #{seq} now, not #{seq + 1}: nothing done" in out
            assert (await stuck_by_cli(db))[a]["message_seq"] == seq

            # skip: the message after the poison is delivered
            assert "skipped" in await act_by_cli(runtime, "skip", a, "--message", str(seq))
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
            assert "the audit log is empty" not in out
            assert a in await stuck_by_cli(db)  # poison-3 is still there

    run(scenario())


# --- acting while a call is in progress -------------------------------------------------------


class HeldServer(FunctionServer):
    """While ``hold`` is set, each request waits for ``release`` (``held`` says one came): the
    runtime's call stays in progress for as long as the test wants."""

    def __init__(self, functions: StatefulFunctions) -> None:
        super().__init__(functions)
        self.hold = False
        self.held = asyncio.Event()
        self.release = asyncio.Event()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.hold:
            self.held.set()
            await self.release.wait()
        return await super()._handle(request)

    async def hold_next(self) -> None:
        """Hold the requests from now on, and wait for the first of them."""
        self.hold = True
        self.held.clear()
        self.release.clear()
        await self.held.wait()

    def release_all(self) -> None:
        self.hold = False
        self.release.set()

    async def __aexit__(self, *exc: object) -> None:
        self.release_all()  # a request still held would hold up the server's shutdown
        await super().__aexit__(*exc)


def misrouting_functions(broken: list[bool]) -> StatefulFunctions:
    """Counts its messages; while ``broken[0]``, a message starting with ``poison`` is answered
    with a message to a function type no endpoint serves: a reply the runtime refuses at once,
    with no retries, so that the address is stuck from the first call."""
    functions = StatefulFunctions()

    @functions.bind(FRAGILE, specs=[ValueSpec("count", IntType)])
    def fragile(context: Context, message: Message) -> None:
        if (message.as_string() or "").startswith(POISON) and broken[0]:
            context.send(message_builder("com.nowhere/fn", "x", str_value="lost"))
            return
        context.storage.count = (context.storage.count or 0) + 1

    return functions


def test_a_skip_or_dead_letter_during_a_call_is_done_when_the_call_ends(tmp_path: Path) -> None:
    """Asked for while the stuck address's retry is being called, a skip is stored and done
    once that call fails, across kill -9; a dead-letter whose call then succeeds is not done.
    The one who asked is told so at once, and the audit log says what came of it."""
    a = f"{FRAGILE}/a"
    db = tmp_path / "runtime.db"
    broken = [True]

    async def scenario() -> None:
        server = HeldServer(misrouting_functions(broken))
        async with running(tmp_path, server=server, call="60s") as (_, runtime):
            await send(runtime, a, POISON)
            await send(runtime, a, "after the poison")
            seq = (await until_stuck(db, a))["message_seq"]
            await server.hold_next()  # the retry: a call to a is in progress
            code, out = await cli("skip", a, "--url", runtime.url)
            assert code == 0, out
            assert out.startswith(
                f"{a}: skip pending: a call to {a} is in progress: if it fails, message #{seq} "
                f"is skipped; if it succeeds, the message was delivered and the skip is not done"
            ), out
            assert (await stuck_by_cli(db))[a]["pending"]["by"] == "cli"
            code, out = await cli("stuck", "--db", str(db))
            assert "  pending: skip by cli at " in out, out
            assert await audit_by_cli(db) == []  # nothing done yet

            # kill -9 with the skip pending: the restarted runtime sends the call again, and
            # does the skip when it fails
            await runtime.kill_9()
            assert (await stuck_by_cli(db))[a]["pending"]["action"] == "skip"
            server.held.clear()
            await runtime.start()
            await server.held.wait()
            server.release_all()
            await until_count(db, a, 1)  # the message after the poison
            assert a not in await stuck_by_cli(db)
            (done,) = await audit_by_cli(db)
            assert (done["action"], done["message_seq"], done["by"]) == ("skip", seq, "cli")
            assert done["detail"] == "asked for while a call was in progress, which failed"

            # a dead-letter, over HTTP, while a call is in progress that then succeeds
            await send(runtime, a, f"{POISON}-2")
            seq = (await until_stuck(db, a))["message_seq"]
            await server.hold_next()
            async with aiohttp.ClientSession() as session:
                path = f"{runtime.url}/api/stuck/dead-letter/{a}?by=ops"
                async with session.post(path, json={}) as response:
                    assert response.status == 202, await response.text()
                    reply = await response.json()
            assert (reply["address"], reply["done"]) == (a, "pending")
            dead_letter = f"if it fails, message #{seq} is moved to the dead-letter egress"
            assert dead_letter in reply["detail"], reply
            broken[0] = False  # the function is fixed meanwhile
            server.release_all()
            await until_count(db, a, 2)  # delivered, not dead-lettered
            assert a not in await stuck_by_cli(db)
            assert [v for v in await egress_by_cli(db) if v["egress"] == DEFAULT_EGRESS] == []
            moot = (await audit_by_cli(db))[-1]
            assert (moot["action"], moot["message_seq"], moot["by"]) == ("dead-letter", seq, "ops")
            code, out = await cli("audit", "--db", str(db))
            assert (
                f"dead-letter {a} message #{seq} by ops (not done: asked for while a call "
                f"was in progress, which delivered message #{seq})"
            ) in out, out

    run(scenario())


def test_an_action_during_a_call_in_process_is_done_or_moot_and_leaves_nothing_behind(
    tmp_path: Path,
) -> None:
    """The runtime's own API, in this process: a skip asked for while the retry is being called
    is pending (a later dead-letter by someone else replaces it, and says so); the call fails,
    so the dead-letter is done. Then a skip whose call succeeds is moot. Either way the stuck
    and request tables are left empty."""
    target = Address(FRAGILE, "a")
    a = str(target)
    db = tmp_path / "runtime.db"
    broken = [True]

    def rows(runtime: LocalRuntime, table: str) -> int:
        return int(runtime.store.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    async def until_stuck_in_process(runtime: LocalRuntime) -> int:
        await soon(runtime.stuck)
        return int(runtime.stuck()[0]["message_seq"])

    async def scenario() -> None:
        async with HeldServer(misrouting_functions(broken)) as server:
            module = parse_module(module_yaml(server.url, call="60s"))
            async with LocalRuntime(module, db, failure_pause=0.05, offline=True) as runtime:
                await runtime.send(target, StringValue(POISON))
                await runtime.send(target, StringValue("after the poison"))
                seq = await until_stuck_in_process(runtime)
                await server.hold_next()  # the retry: a call to a is in progress
                skip = runtime.skip(target, "me")
                assert skip.done == "pending"
                assert skip.detail == (
                    f"a call to {a} is in progress: if it fails, message #{seq} is skipped; if "
                    f"it succeeds, the message was delivered and the skip is not done (the "
                    f"audit log will say which)")  # fmt: skip
                again = runtime.skip(target, "me")
                assert again == skip  # the same request: nothing replaced
                dead = runtime.dead_letter(target, "ops")
                assert dead.done == "pending"
                assert dead.detail.endswith(
                    "is moved to the dead-letter egress; if it succeeds, the message was "
                    "delivered and the dead-letter is not done (the audit log will say which)"
                    "; this replaces the skip asked for by me")  # fmt: skip
                assert runtime.stuck()[0]["pending"]["by"] == "ops"
                assert runtime.audit_log() == []  # nothing done yet
                server.release_all()  # the call fails: the dead-letter is done
                await runtime.wait_until_idle()
                assert runtime.inspect(target)["state"]["count"]["value"] == 1
                (done,) = runtime.audit_log()
                assert (done["action"], done["by"]) == ("dead-letter", "ops")
                assert done["message_seq"] == seq
                why = "asked for while a call was in progress, which failed"
                assert done["detail"] == f"{why}, to {DEFAULT_EGRESS}"
                (dead_letter,) = runtime.egress_records()
                assert dead_letter["egress"] == DEFAULT_EGRESS
                assert (rows(runtime, "stuck"), rows(runtime, "stuck_requests")) == (0, 0)

                await runtime.send(target, StringValue(f"{POISON}-2"))
                seq = await until_stuck_in_process(runtime)
                await server.hold_next()
                assert runtime.skip(target, "me").done == "pending"
                broken[0] = False  # the function is fixed meanwhile
                server.release_all()  # the call succeeds: the skip is moot
                await runtime.wait_until_idle()
                assert runtime.inspect(target)["state"]["count"]["value"] == 2
                moot = runtime.audit_log()[0]
                assert (moot["action"], moot["message_seq"], moot["by"], moot["detail"]) == (
                    "skip", seq, "me", "not done: asked for while a call was in progress, "
                    f"which delivered message #{seq}")  # fmt: skip
                assert runtime.stuck() == [] and len(runtime.egress_records()) == 1
                assert (rows(runtime, "stuck"), rows(runtime, "stuck_requests")) == (0, 0)
                with pytest.raises(NotStuckError):
                    runtime.skip(target, "me")

    run(scenario())


def test_a_skip_asked_for_during_the_call_that_reaches_the_policy_is_done_once(
    tmp_path: Path,
) -> None:
    """The retry asked for by hand fails, and its failure is the policy's last attempt: the
    skip asked for during that call is done, and the policy then has nothing to dead-letter."""
    target = Address(FRAGILE, "a")

    async def scenario() -> None:
        async with HeldServer(misrouting_functions([True])) as server:
            module = parse_module(module_yaml(server.url, call="60s"))
            policy = DeadLetterPolicy(after=2)
            async with LocalRuntime(module, tmp_path / "runtime.db", failure_pause=30,
                                    offline=True, dead_letters=policy) as runtime:  # fmt: skip
                await runtime.send(target, StringValue(POISON))
                await runtime.send(target, StringValue("after the poison"))
                await soon(lambda: target in runtime._waiting)  # failed, its retry 30 s away
                held = asyncio.ensure_future(server.hold_next())
                await asyncio.sleep(0)  # requests are held from now on
                assert runtime.retry_now(target, "me") == Outcome("retrying", "")
                await held  # the second attempt is in progress
                in_progress = Outcome("retrying", "a call was in progress already")
                assert runtime.retry_now(target, "ops") == in_progress
                assert runtime.skip(target, "me").done == "pending"
                server.release_all()  # the second attempt fails
                await runtime.wait_until_idle()
                assert runtime.inspect(target)["state"]["count"]["value"] == 1
                assert [(e["action"], e["by"], e["detail"]) for e in runtime.audit_log()] == [
                    ("skip", "me", "asked for while a call was in progress, which failed"),
                    ("retry", "ops", "a call was in progress already"),
                    ("retry", "me", ""),
                ]
                assert runtime.egress_records() == []
                assert runtime.stuck() == []

    run(scenario())


def test_a_failed_batch_is_retried_with_its_head_message_alone(tmp_path: Path) -> None:
    target = Address(FRAGILE, "a")

    async def scenario() -> None:
        async with serving(fragile_functions(), tmp_path / "db.sqlite", call="300ms",
                           failure_pause=30) as (_, runtime):  # fmt: skip
            # no await between them: the first goes alone, the other two are the next batch
            for text in ["fine", POISON, "fine again"]:
                runtime.engine.send(target, StringValue(text))
            runtime._wake.set()
            await soon(lambda: target in runtime._waiting)
            (failure,) = runtime.failures
            assert failure.messages == 2
            view = runtime.inspect(target)
            assert [m["value"] for m in view["in_flight"]] == [POISON]  # what the retry sends
            assert [m["value"] for m in view["queued"]] == ["fine again"]
            assert runtime.dead_letter(target, "me").done == "dead-lettered"
            await runtime.wait_until_idle()
            assert runtime.inspect(target)["state"]["count"]["value"] == 2
            (dead,) = runtime.egress_records()
            record = DeadLetterRecord.from_json(json.dumps(dead["record"]["json"]).encode())
            assert (record.attempts, record.error_message) == (1, failure.error)
            assert record.message_value == StringType.serializer().serialize(POISON)

    run(scenario())


# --- STATEFUN_LOCAL_DB and STATEFUN_LOCAL_URL ---------------------------------------------------


def test_the_environment_names_the_database_and_the_runtime_of_every_command(
    tmp_path: Path,
) -> None:
    """``run --db runtime.db``, then ``STATEFUN_LOCAL_DB=runtime.db`` for the commands that
    read the database: they find it (run from another directory, where no statefun-local.db
    is); ``--db`` still wins; and ``run`` takes it too. ``STATEFUN_LOCAL_URL`` is the runtime
    of the commands that ask it, whose failure to reach one says how to name another."""
    a, b = f"{FRAGILE}/a", f"{FRAGILE}/b"
    db = tmp_path / "runtime.db"
    env = {"STATEFUN_LOCAL_DB": str(db)}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    async def scenario() -> None:
        async with running(tmp_path) as (_, runtime):
            await send(runtime, a, POISON)
            await send(runtime, b, "healthy")
            await until_stuck(db, a)
            await until_count(db, b, 1)
            assert await act_by_cli(runtime, "retry", a) == "retrying"
            code, out = await cli("retry", a, env={"STATEFUN_LOCAL_URL": runtime.url})
            assert code == 0 and out.startswith(f"{a}: retrying"), out
            code, out = await cli("retry", a, env={"STATEFUN_LOCAL_URL": "http://127.0.0.1:1"})
            assert code != 0, out
            assert "can not reach the runtime at http://127.0.0.1:1" in out, out
            assert "give --url or set STATEFUN_LOCAL_URL" in out, out

            code, out = await cli("state", b, env=env, cwd=elsewhere)
            assert code == 0 and "state count: 1  [io.statefun.types/int]" in out, out
            code, out = await cli("egress", "--json", env=env, cwd=elsewhere)
            assert code == 0 and out == "", out
            code, out = await cli("stuck", env=env, cwd=elsewhere)
            assert code == 0 and f"{a}: message #" in out, out
            code, out = await cli("audit", env=env, cwd=elsewhere)
            assert code == 0 and f"retry {a} message #" in out, out
            missing = tmp_path / "missing.db"
            code, out = await cli("stuck", "--db", str(missing), env=env, cwd=elsewhere)
            assert code == 2 and f"no database at {missing}" in out, out
            code, out = await cli("audit", cwd=elsewhere)  # neither: statefun-local.db
            assert code == 2, out
            assert "no database at statefun-local.db (give --db or set STATEFUN_LOCAL_DB" in out
            for command in ("run", "state", "egress", "stuck", "audit"):
                code, out = await cli(command, "--help")
                assert "STATEFUN_LOCAL_DB" in out, (command, out)
            for command in ("send", "retry", "skip", "dead-letter"):
                code, out = await cli(command, "--help")
                assert "STATEFUN_LOCAL_URL" in out, (command, out)

        # run: its database is STATEFUN_LOCAL_DB's too
        other = tmp_path / "other.db"
        module = tmp_path / "module.yaml"
        variables = {"STATEFUN_LOCAL_DB": str(other)}
        async with Runtime(module, None, env=variables, cwd=elsewhere) as runtime:
            await runtime.start()
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{runtime.url}/api/status") as response,
            ):
                assert (await response.json())["db"] == str(other)
        assert other.exists()
        assert list(elsewhere.iterdir()) == []

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
            failed = [line for line in runtime.output()[logged:].splitlines()
                      if "message(s) failed" in line]  # fmt: skip
            assert len(failed) == 2
            # the last: dead-lettered at once (the next line says so), not retried
            assert "(retrying in" in failed[0] and "(retrying in" not in failed[1]
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


def test_attempts_are_counted_for_the_head_message_whatever_its_number(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serving(fragile_functions(), tmp_path / "db.sqlite", call="100ms",
                           dead_letters=DeadLetterPolicy(after=3)) as (_, runtime):  # fmt: skip
            for name in ["a", "b", "c", "d"]:  # the poison below is message #5, not #1
                await runtime.send(Address(FRAGILE, name), StringValue("fine"))
            await runtime.wait_until_idle()
            await runtime.send(Address(FRAGILE, "t"), StringValue(POISON))
            await runtime.wait_until_idle(timeout=10)
            (entry,) = runtime.audit_log()
            assert entry["message_seq"] == 5
            assert entry["detail"] == f"after 3 attempts, to {DEFAULT_EGRESS}"

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


def test_a_stuck_address_says_in_utc_when_it_first_and_last_failed_and_its_next_retry(
    tmp_path: Path,
) -> None:
    async def scenario() -> dict[str, Any]:
        async with serving(fragile_functions(), tmp_path / "db.sqlite", call="100ms") as (
            _,
            runtime,
        ):
            await runtime.send(Address(FRAGILE, "t"), StringValue(POISON))
            while not runtime.stuck() or runtime.stuck()[0]["attempts"] < 2:
                await asyncio.sleep(0.02)
            (entry,) = runtime.stuck()
            return entry

    before = int(time.time())
    entry = run(scenario())
    first, last = (
        datetime.datetime.fromisoformat(entry[key]) for key in ["first_failed", "last_failed"]
    )
    assert first.tzinfo == datetime.timezone.utc
    assert before <= first.timestamp() <= last.timestamp() <= time.time()
    next_retry = datetime.datetime.fromtimestamp(
        entry["next_retry_ms"] // 1000, datetime.timezone.utc
    )
    assert entry["next_retry"] == next_retry.isoformat()


def test_the_pause_before_a_retry_doubles_up_to_a_minute(tmp_path: Path) -> None:
    """Each failure of the same head message doubles the pause before its retry, from
    ``failure_pause``, to 60 s at most; the failures shown say when, to the second, in UTC."""
    clock = ManualClock(1_000_000)  # the next retry is due exactly that pause from now
    target = Address(FRAGILE, "t")

    async def scenario() -> None:
        async with serving(fragile_functions(), tmp_path / "db.sqlite", call="100ms",
                           failure_pause=20, clock=clock) as (_, runtime):  # fmt: skip
            await runtime.send(target, StringValue(POISON))

            def waiting_after(attempts: int) -> Any:
                return lambda: (target in runtime._waiting
                                and runtime.stuck()[0]["attempts"] >= attempts)  # fmt: skip

            pauses = []
            for attempt in range(1, 5):
                # each retry asked for by hand: the runtime would wait 20 s, 40 s, ...
                await soon(waiting_after(attempt))
                pauses.append(runtime.stuck()[0]["next_retry_ms"] - clock.now_ms())
                if attempt < 4:
                    runtime.retry_now(target, "me")  # due now: the runtime is told at once
                    assert runtime.stuck()[0]["next_retry_ms"] == clock.now_ms()
            assert pauses == [20_000, 40_000, 60_000, 60_000]
            assert len(runtime.failures) >= 4
            for failure in runtime.failures:
                when = datetime.datetime.fromisoformat(failure.time)
                assert when.tzinfo == datetime.timezone.utc and when.microsecond == 0
                assert failure.time == when.isoformat()  # no fraction of a second shown
            assert runtime.status()["failures"]
            assert runtime.skip(target, "me").done == "skipped"
            assert runtime.status()["failures"] == []  # skipped: the address is not failing

    run(scenario())


def test_a_database_no_runtime_has_run_on_has_no_stuck_addresses_and_no_audit_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    SqliteStore.open(tmp_path / "db.sqlite").close()  # without the tables of stuck addresses
    assert main(["stuck", "--db", str(tmp_path / "db.sqlite")]) == 0
    assert main(["audit", "--db", str(tmp_path / "db.sqlite")]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "no stuck addresses",
        "the audit log is empty: nothing was done to a stuck address or its state",
    ]


def fail_a_poison_call(db: Path) -> None:
    """Run a runtime on ``db`` until a call with a poison message has failed for good, then
    stop it: ``FRAGILE/t`` is stuck in the database."""

    async def scenario() -> None:
        async with serving(fragile_functions(), db, call="100ms", failure_pause=30) as (_, runtime):
            await runtime.send(Address(FRAGILE, "t"), StringValue(POISON))
            while not any(entry["attempts"] for entry in runtime.stuck()):  # a failed call
                await asyncio.sleep(0.02)

    run(scenario())


def test_a_database_from_before_pending_requests_lists_its_stuck_addresses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "db.sqlite"
    fail_a_poison_call(db)
    conn = sqlite3.connect(db)
    conn.execute("DROP TABLE stuck_requests")
    conn.commit()
    conn.close()
    assert main(["stuck", "--db", str(db), "--json"]) == 0
    (entry,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (entry["address"], entry["attempts"], entry["pending"]) == (f"{FRAGILE}/t", 1, None)


def test_a_database_from_before_call_attempts_lists_its_stuck_addresses_and_gets_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI lists the stuck addresses of a database whose stuck table has no
    ``call_attempts`` (none in progress); a runtime started on it adds the column."""
    db = tmp_path / "db.sqlite"
    fail_a_poison_call(db)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("ALTER TABLE stuck DROP COLUMN call_attempts")
        conn.commit()
    assert main(["stuck", "--db", str(db), "--json"]) == 0
    (entry,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (entry["address"], entry["attempts"], entry["call_attempts"]) == (f"{FRAGILE}/t", 1, 0)

    async def again() -> None:
        async with serving(fragile_functions(), db, call="100ms", failure_pause=30) as (_, runtime):
            await soon(lambda: any(entry["attempts"] >= 2 for entry in runtime.stuck()))

    run(again())


def test_the_cli_reads_an_older_database_as_it_is_and_refuses_a_newer_one(
    tmp_path: Path,
) -> None:
    """``state``, ``egress``, ``stuck`` and ``audit`` open the database read-only: they can not
    upgrade it as ``run`` does. A version-1 database made before the trace columns failed with
    'no such column: traceparent'; one of a newer version was read as if it were this one's.
    Now the older is read as it is (left as it is), and the newer refused, saying why."""
    old, new = tmp_path / "old.sqlite", tmp_path / "new.sqlite"
    fail_a_poison_call(old)
    store = SqliteStore.open(old)
    with store.transaction():
        store.egress_append(EgressRecord("com.example/out", make_value("string", "sent")))
    store.close()
    with contextlib.closing(sqlite3.connect(old)) as conn:  # as version 1 first wrote it
        for table in ("mailbox", "timers", "egress"):
            for column in ("traceparent", "tracestate"):
                conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        conn.execute("ALTER TABLE stuck DROP COLUMN call_attempts")
        conn.execute("DROP TABLE stuck_requests")
        conn.execute("UPDATE meta SET value = 1 WHERE key = 'schema_version'")
        conn.commit()
    store = SqliteStore.open(new)
    store.meta_put("schema_version", SCHEMA_VERSION + 1)
    store.close()
    t = f"{FRAGILE}/t"

    async def scenario() -> None:
        code, out = await cli("state", t, "--db", str(old))
        assert (code, out.splitlines()[:4]) == (0, [
            t, f"  state count: (no value)  [{IntType.typename}]", "  in flight: 1 message(s)",
            f"    #1: {POISON}  [{StringType.typename}]"])  # fmt: skip
        assert await cli("egress", "--db", str(old)) == (0, "#1 com.example/out: sent\n")
        assert list(await stuck_by_cli(old)) == [t]
        assert await cli("audit", "--db", str(old)) == (
            0,
            "the audit log is empty: nothing was done to a stuck address or its state\n",
        )
        for command in (["state", t], ["egress"], ["stuck"], ["audit"]):
            assert await cli(*command, "--db", str(new)) == (
                2,
                (
                    f"statefun-local: {new} has schema version {SCHEMA_VERSION + 1}, written by a "
                    f"newer statefun-local (this one reads up to {SCHEMA_VERSION}): read it with "
                    "that version\n"
                ),
            )

    run(scenario())
    with contextlib.closing(sqlite3.connect(old)) as conn:  # not upgraded
        assert conn.execute("SELECT value FROM meta").fetchall() == [(1,)]
        assert "traceparent" not in {row[1] for row in conn.execute("PRAGMA table_info(mailbox)")}


def test_a_policy_checks_its_attempts_and_the_egress_it_names() -> None:
    module = parse_module(module_yaml("http://127.0.0.1:1/statefun", extra="""
---
kind: io.statefun.kinesis.v1/egress
spec: {id: com.example/stream, awsRegion: {type: default}}
---
kind: io.statefun.playground.v1/egress
spec: {port: 8091, topics: [greetings]}
"""))  # fmt: skip
    for fine in [
        DeadLetterPolicy(after=0, by_type={FRAGILE: 0}),  # 0: only by hand
        DeadLetterPolicy(DeadLetterEgress("com.example/out", topic="dead"), after=1),
        DeadLetterPolicy(DeadLetterEgress("com.example/stream", stream="dead")),
    ]:
        fine.check(module)
    for policy, problem in [
        (DeadLetterPolicy(after=-1), "attempts must be 0 or more, got -1"),
        (DeadLetterPolicy(by_type={FRAGILE: -2}), "attempts must be 0 or more, got -2"),
        (
            DeadLetterPolicy(DeadLetterEgress("com.example/nope")),
            "no egress 'com.example/nope' in the module (known: com.example/out, "
            "com.example/stream, io.statefun.playground/egress)",
        ),
        (DeadLetterPolicy(DeadLetterEgress("com.example/out")), "a Kafka egress; name its topic"),
        (
            DeadLetterPolicy(DeadLetterEgress("com.example/stream")),
            "a Kinesis egress; name its stream",
        ),
        (  # given a stream, it would be taken for a Kinesis egress
            DeadLetterPolicy(DeadLetterEgress("io.statefun.playground/egress", stream="dead")),
            "io.statefun.playground/egress takes the playground's records only; name a Kafka "
            "or Kinesis egress, or none (stored only)",
        ),
    ]:
        with pytest.raises(PolicyError) as refused:
            policy.check(module)
        assert problem in str(refused.value)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("- after: 3\n", "expected a mapping"),
        ("after: 3\nretries: 2\nwhen: now\n", "unknown keys retries, when"),
        ("functions: [com.example/fragile]\n", "functions maps function types to attempts"),
        ("functions: {com.example/fragile: many}\n", "functions maps function types to attempts"),
        (
            "topic: t\nstream: s\n",
            "a dead-letter egress has a Kafka topic or a Kinesis stream, not both",
        ),
    ],
)
def test_a_policy_file_that_is_not_one_says_why(tmp_path: Path, text: str, problem: str) -> None:
    config = tmp_path / "dead-letters.yaml"
    config.write_text(text)
    with pytest.raises(PolicyError) as refused:
        DeadLetterPolicy.load(config)
    assert str(refused.value) == f"{config}: {problem}"


def test_an_empty_policy_file_is_the_default_policy(tmp_path: Path) -> None:
    config = tmp_path / "dead-letters.yaml"
    config.write_text("")
    assert DeadLetterPolicy.load(config) == DeadLetterPolicy()


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
                    while not any(entry["attempts"] for entry in runtime.stuck()):  # a failed call
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
                    # asked for another message than the head (delivered, skipped meanwhile):
                    # nothing is done
                    head = entry["message_seq"]
                    async with session.post(f"{path}?message={head + 1}", json={}) as response:
                        assert response.status == 409
                        assert await response.text() == (
                            f"{target}: its failing head message is #{head} now, not "
                            f"#{head + 1}: nothing done (look at it again)\n"
                        )
                    async with session.post(f"{path}?message=x", json={}) as response:
                        assert response.status == 400
                    assert runtime.stuck() and runtime.audit_log() == []
                    async with session.post(f"{path}?message={head}", json={}) as response:
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


def test_the_cli_shows_and_acts_on_an_address_whose_id_is_empty(tmp_path: Path) -> None:
    """A Kafka record's empty key is an address's empty id, listed by ``stuck`` as
    ``namespace/type/``: ``state`` and ``skip`` take it as listed (the skip sends it as
    ``?id=``: an empty id has no path)."""
    from .test_server_and_cli import serve_runtime

    target = Address(FRAGILE, "")
    db = tmp_path / "db.sqlite"

    Answer = tuple[int, str]

    async def scenario() -> tuple[list[str], Answer, Answer, Answer, Optional[int]]:
        async with serving(fragile_functions(), db, call="300ms",
                           failure_pause=30) as (_, runtime):  # fmt: skip
            runner, url = await serve_runtime(runtime)
            try:
                await runtime.send(target, StringValue(POISON))
                await runtime.send(target, StringValue("fine"))
                while target not in runtime._waiting:  # its call failed: the retry waits 30 s
                    await asyncio.sleep(0.02)
                listed = list(await stuck_by_cli(db))
                state = await cli("state", listed[0], "--db", str(db))
                skipped = await cli("skip", listed[0], "--url", url)
                sent = await cli("send", listed[0], "--string", "x", "--url", url)
                if skipped[0] == 0:  # the message behind the skipped one is delivered
                    await runtime.wait_until_idle()
                count = runtime.inspect(target)["state"].get("count", {}).get("value")
            finally:
                await runner.cleanup()
        return listed, state, skipped, sent, count

    listed, state, skipped, sent, count = run(scenario())
    assert listed == [f"{FRAGILE}/"]
    assert state[0] == 0 and state[1].startswith(
        f"{FRAGILE}/\n  state count: (no value)  [{IntType.typename}]\n"
    ), state
    assert skipped == (0, f"{FRAGILE}/: skipped\n")
    assert count == 1
    assert sent == (
        2,
        f"statefun-local: '{FRAGILE}/' has an empty id: a message is sent to an "
        "id (only a Kafka record's empty key makes an empty one)\n",
    )


def test_a_call_that_failed_for_good_is_not_listed_as_being_retried_while_its_retry_waits(
    tmp_path: Path,
) -> None:
    """Its failed attempts are listed (``/api/status`` ``retrying``, the page's 'Calls being
    retried') while the call lasts, not in the pause before the next call."""
    target = Address(FRAGILE, "a")

    async def scenario() -> tuple[list[str], list[dict[str, Any]]]:
        async with serving(fragile_functions(), tmp_path / "db.sqlite", call="300ms",
                           failure_pause=30) as (_, runtime):  # fmt: skip
            await runtime.send(target, StringValue(POISON))
            while target not in runtime._waiting:  # its call failed: the retry waits 30 s
                await asyncio.sleep(0.02)
            stuck = [entry["address"] for entry in runtime.stuck()]
            return stuck, runtime.status()["retrying"]

    stuck, retrying = run(scenario())
    assert stuck == [str(target)]
    assert retrying == []
