"""A randomized end-to-end run of the real local runtime under faults, after StateFun's smoke
end-to-end test.

A seeded generator makes nested command trees: increment this address's counter, send
commands to another address, send them delayed, send delayed then cancel (the cancelled
message carries an egress record that must never appear), write an egress record. The trees
enter through the runtime's HTTP ingress and run in one function, served by an aiohttp server
that fails at random: a 500 before the function runs, or after it ran (its effects must be
dropped). The runtime runs as its own process (``python -m statefun_local run``) and is killed
with SIGKILL at random points, then restarted on the same SQLite file. At the end every
counter equals what the generator expects, and every egress record appears exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, Any, Optional

import aiohttp
from aiohttp import web

from statefun_core import (
    CONTENT_TYPE,
    Context,
    IntType,
    Message,
    RequestReplyHandler,
    StatefulFunctions,
    ValueSpec,
    error_response,
    kafka_egress_message,
    make_json_type,
    make_plugin_manager,
    message_builder,
    protocol,
)

from .servers import free_port

FUNCTION = "smoke/fn"
EGRESS = "smoke/out"
COMMANDS = make_json_type("smoke.types/commands")
NEVER = "never-"  # egress ids inside cancelled messages
ONE_HOUR_MS = 3_600_000


# --- the generator ------------------------------------------------------------------------


@dataclass
class Generator:
    """Command trees and what they must add up to."""

    rng: random.Random
    ids: int = 20
    max_depth: int = 3
    expected: Counter[str] = field(default_factory=Counter)
    egress: list[str] = field(default_factory=list)
    commands_made: int = 0
    _next: int = 0

    def _unique(self, prefix: str) -> str:
        self._next += 1
        return f"{prefix}{self._next}"

    def _id(self) -> str:
        return str(self.rng.randrange(self.ids))

    def commands(self, at: str, depth: int = 0) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for _ in range(self.rng.randint(1, 4)):
            self.commands_made += 1
            roll = self.rng.random()
            deeper = depth < self.max_depth
            if roll < 0.4 or (not deeper and roll < 0.7):
                self.expected[at] += 1
                out.append({"op": "inc"})
            elif roll < 0.55 and deeper:
                to = self._id()
                out.append({"op": "send", "to": to, "cmds": self.commands(to, depth + 1)})
            elif roll < 0.7 and deeper:
                to = self._id()
                ms = self.rng.randint(5, 300)
                cmds = self.commands(to, depth + 1)
                out.append({"op": "delay", "to": to, "ms": ms, "cmds": cmds})
            elif roll < 0.8:
                token = self._unique("token-")
                doomed = [{"op": "inc"}, {"op": "egress", "id": self._unique(NEVER)}]
                out.append({"op": "delay", "to": self._id(), "ms": ONE_HOUR_MS,
                            "token": token, "cmds": doomed})  # fmt: skip
                out.append({"op": "cancel", "token": token})
            else:
                record = self._unique("record-")
                self.egress.append(record)
                out.append({"op": "egress", "id": record})
        return out

    def ingress(self) -> tuple[str, list[dict[str, Any]]]:
        at = self._id()
        return at, self.commands(at)


# --- the function and its faulty server ---------------------------------------------------


def make_functions() -> StatefulFunctions:
    functions = StatefulFunctions()

    @functions.bind(FUNCTION, specs=[ValueSpec("count", IntType)])
    def run_commands(context: Context, message: Message) -> None:
        for command in message.as_type(COMMANDS):
            op = command["op"]
            if op == "inc":
                context.storage.count = (context.storage.count or 0) + 1
            elif op in ("send", "delay"):
                onward = message_builder(
                    FUNCTION, command["to"], value=command["cmds"], value_type=COMMANDS
                )
                if op == "send":
                    context.send(onward)
                else:
                    delay = timedelta(milliseconds=command["ms"])
                    context.send_after(delay, onward, command.get("token", ""))
            elif op == "cancel":
                context.cancel_delayed_message(command["token"])
            elif op == "egress":
                context.send_egress(kafka_egress_message(EGRESS, "records", command["id"]))

    return functions


class FaultyFunctionServer:
    """Serves the function on 127.0.0.1; answers 500 at random, before or after running it."""

    def __init__(self, rng: random.Random, failure_rate: float) -> None:
        self.handler = RequestReplyHandler(
            make_functions(), plugins=make_plugin_manager(load_entrypoints=False)
        )
        self.rng = rng
        self.failure_rate = failure_rate
        self.requests = 0
        self.failed = 0
        self.url = ""
        self._runner: Optional[web.AppRunner] = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        body = await request.read()
        fail = self.rng.random() < self.failure_rate
        if fail and self.rng.random() < 0.5:
            self.failed += 1
            return web.Response(status=500, text="injected before the function")
        try:
            reply = await self.handler.handle_async(body)
        except Exception as error:
            status, text = error_response(error)
            return web.Response(status=status, text=text)
        if fail:  # the function ran, but its reply is lost
            self.failed += 1
            return web.Response(status=500, text="injected after the function")
        return web.Response(body=reply, content_type=CONTENT_TYPE)

    async def __aenter__(self) -> FaultyFunctionServer:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/statefun", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/statefun"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


def module_yaml(url: str) -> str:
    return f"""
kind: io.statefun.endpoints.v2/http
spec:
  functions: smoke/*
  urlPathTemplate: {url}
  transport:
    call: 30s
---
kind: io.statefun.kafka.v1/egress
spec:
  id: {EGRESS}
  address: kafka:9092
"""


# --- the runtime process ------------------------------------------------------------------


class RuntimeProcess:
    """``python -m statefun_local run``, restartable, its log kept in a file; stopped by its PID
    (by ``stop``, and by ``start`` when it does not start). ``async with`` it to stop it at the
    end of the block, its log printed (for pytest to show) if the block fails."""

    def __init__(self, module: Path, db: Path) -> None:
        self.module = module
        self.db = db
        self.process: Optional[asyncio.subprocess.Process] = None
        self.log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed at the end
        self.url = ""
        self.starts = 0

    async def start(self, session: aiohttp.ClientSession) -> None:
        port = free_port()
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "statefun_local", "run", str(self.module),
            "--db", str(self.db), "--port", str(port), "--offline",
            stdout=self.log, stderr=self.log, stdin=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        self.url = f"http://127.0.0.1:{port}"
        self.starts += 1
        for _ in range(600):
            try:
                async with session.get(f"{self.url}/api/status") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if self.process.returncode is not None:
                break
            await asyncio.sleep(0.05)
        code = self.process.returncode
        problem = "did not start" if code is None else f"exited with {code}"
        await self.stop()
        raise RuntimeError(f"the runtime {problem}:\n{self.output()}")

    async def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        """SIGTERM, and SIGKILL if it lingers 30 s."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except asyncio.TimeoutError:
                self.process.kill()
                await self.process.wait()

    def output(self) -> str:
        # pread, not seek and read: the runtime writes at this file's offset, which it shares
        fd = self.log.fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")

    async def __aenter__(self) -> RuntimeProcess:
        return self

    async def __aexit__(self, kind: Optional[type[BaseException]], *_: object) -> None:
        if kind is not None:
            print(f"--- the runtime's log ---\n{self.output()}")
        await self.stop()
        self.log.close()

    async def send(self, session: aiohttp.ClientSession, id: str, commands: list[Any]) -> None:
        body = {"type": COMMANDS.typename, "value": commands}
        async with session.post(f"{self.url}/ingress/{FUNCTION}/{id}", json=body) as response:
            assert response.status == 202, await response.text()

    async def wait_until_idle(self, session: aiohttp.ClientSession, timeout: float) -> None:
        totals: dict[str, Any] = {}
        for _ in range(int(timeout / 0.05)):
            async with session.get(f"{self.url}/api/status") as response:
                totals = json.loads(await response.text())["totals"]
            if totals["queued"] == totals["in_flight"] == totals["timers"] == 0:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"the runtime never finished: {totals}")


@dataclass
class SmokeResult:
    ingress: int
    commands: int
    kills: int
    killed_mid_flow: int
    starts: int
    function_calls: int
    injected_failures: int
    counts: dict[str, int]
    expected: dict[str, int]
    egress: list[str]
    expected_egress: list[str]
    seconds: float

    def summary(self) -> str:
        return (
            f"{self.ingress} ingress messages, {self.commands} commands, "
            f"{sum(self.expected.values())} increments over {len(self.expected)} ids, "
            f"{len(self.expected_egress)} egress records; {self.kills} kill -9 "
            f"({self.killed_mid_flow} with work pending), "
            f"{self.starts} starts; {self.function_calls} function calls of which "
            f"{self.injected_failures} answered 500; {self.seconds:.0f} s"
        )


async def run_smoke(
    workdir: Path, seed: int, waves: int, per_wave: int, failure_rate: float = 0.1
) -> SmokeResult:
    started = time.monotonic()
    rng = random.Random(seed)
    generator = Generator(random.Random(seed + 1))
    db = workdir / "smoke.db"
    module = workdir / "module.yaml"
    kills = killed_mid_flow = 0
    async with FaultyFunctionServer(random.Random(seed + 2), failure_rate) as server:
        module.write_text(module_yaml(server.url))
        runtime = RuntimeProcess(module, db)
        async with aiohttp.ClientSession() as session, runtime:
            for _ in range(waves):
                await runtime.start(session)
                wave = [generator.ingress() for _ in range(per_wave)]
                await asyncio.gather(*(runtime.send(session, id, cmds) for id, cmds in wave))
                await asyncio.sleep(rng.uniform(0.02, 0.6))
                await runtime.kill()
                kills += 1
                killed_mid_flow += pending(db)
            await runtime.start(session)
            await runtime.wait_until_idle(session, timeout=300)
    counts, egress = read_results(db)
    return SmokeResult(
        ingress=waves * per_wave, commands=generator.commands_made, kills=kills,
        killed_mid_flow=killed_mid_flow,
        starts=runtime.starts, function_calls=server.requests,
        injected_failures=server.failed, counts=counts, expected=dict(generator.expected),
        egress=egress, expected_egress=generator.egress, seconds=time.monotonic() - started,
    )  # fmt: skip


def pending(db: Path) -> bool:
    """Whether messages or timers were waiting in the database (read after a kill)."""
    from statefun_local.store import connect

    conn = connect(db, readonly=True)
    try:
        queued = conn.execute("SELECT COUNT(*) FROM mailbox").fetchone()[0]
        timers = conn.execute("SELECT COUNT(*) FROM timers").fetchone()[0]
    finally:
        conn.close()
    return bool(queued or timers)


def read_results(db: Path) -> tuple[dict[str, int], list[str]]:
    """The counters and the egress record ids, read straight from the SQLite file."""
    from statefun_local.store import SqliteStore, connect

    from statefun_core.engine import Address

    counts = {}
    egress = []
    with contextlib.closing(SqliteStore(connect(db, readonly=True))) as store:
        for id in range(1000):
            entry = store.state_get(Address(FUNCTION, str(id))).get("count")
            if entry is not None:
                counts[str(id)] = IntType.serializer().deserialize(entry.value)
        for record in store.egress_list(0):
            assert record.egress == EGRESS, record
            kafka = protocol.KafkaProducerRecord.FromString(record.argument.value)
            egress.append(kafka.value_bytes.decode())
    return counts, egress
