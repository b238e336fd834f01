"""``kill -9`` the runtime process while counter messages flow; every count must stay exact.

500 ingress messages each start a chain of 10 deliveries hopping across 100 counter
addresses (every third hop through a delayed message, some hops also scheduling and cancelling
a decoy), 5,000 deliveries in all; 3% of the function's replies are 500s. The runtime
runs as a real process (``python -m statefun_local run``) and is killed with SIGKILL several
times mid-flow, then restarted; at the end each counter must equal what the chains imply: no
message lost, no batch applied twice, every due timer fired.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections import Counter
from datetime import timedelta
from pathlib import Path

import aiohttp
from aiohttp import web
from statefun_local.store import SqliteStore, connect

from statefun_core import Context, IntType, Message, StatefulFunctions, ValueSpec, message_builder
from statefun_core.engine import Address

from .conftest import FunctionServer, module_yaml, run
from .test_stuck import Runtime

ADDRESSES = 100
CHAINS = 500
HOPS = 10  # deliveries per chain
KILLS = 5
COUNTER = "com.example/counter"


def counter_functions() -> StatefulFunctions:
    functions = StatefulFunctions()

    @functions.bind(COUNTER, specs=[ValueSpec("count", IntType)])
    def counter(context: Context, message: Message) -> None:
        count = (context.storage.count or 0) + 1
        context.storage.count = count
        hops_left = message.as_int()
        if hops_left % 4 == 1:
            # scheduled, then cancelled in the same reply: were it ever delivered, the count
            # would be one too high
            token = f"decoy-{count}"
            decoy = message_builder(COUNTER, context.address.id, int_value=0)
            context.send_after(timedelta(milliseconds=20), decoy, cancellation_token=token)
            context.cancel_delayed_message(token)
        if hops_left:
            next_id = str((int(context.address.id) + 1) % ADDRESSES)
            onward = message_builder(COUNTER, next_id, int_value=hops_left - 1)
            if hops_left % 3 == 0:
                context.send_after(timedelta(milliseconds=50), onward)
            else:
                context.send(onward)

    return functions


def expected_counts(starts: list[int]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for start in starts:
        for hop in range(HOPS):
            counts[str((start + hop) % ADDRESSES)] += 1
    return counts


async def send(session: aiohttp.ClientSession, url: str, start: int) -> None:
    async with session.post(
        f"{url}/ingress/com.example/counter/{start}", json={"type": "int", "value": HOPS - 1}
    ) as response:
        assert response.status == 202, await response.text()


def test_kill_9_loses_nothing_and_applies_nothing_twice(tmp_path: Path) -> None:
    rng = random.Random(20261129)
    starts = [rng.randrange(ADDRESSES) for _ in range(CHAINS)]
    db = tmp_path / "runtime.db"
    killed_mid_flow = 0

    async def scenario() -> None:
        nonlocal killed_mid_flow
        faults = random.Random(7)

        def sometimes_500(n: int) -> web.Response | None:
            return web.Response(status=500, text="injected") if faults.random() < 0.03 else None

        async with FunctionServer(counter_functions(), fault=sometimes_500) as server:
            module = tmp_path / "module.yaml"
            module.write_text(module_yaml(server.url))
            waves = [starts[i::KILLS] for i in range(KILLS)]
            async with aiohttp.ClientSession() as session, Runtime(module, db) as runtime:
                for wave in waves:
                    await runtime.start()
                    await asyncio.gather(*(send(session, runtime.url, start) for start in wave))
                    await asyncio.sleep(rng.uniform(0.02, 0.15))
                    await runtime.kill_9()
                    if pending(db):
                        killed_mid_flow += 1
                await runtime.start()
                for _ in range(1200):
                    async with session.get(f"{runtime.url}/api/status") as response:
                        totals = json.loads(await response.text())["totals"]
                    if totals["queued"] == totals["in_flight"] == totals["timers"] == 0:
                        break
                    await asyncio.sleep(0.05)
                else:
                    raise AssertionError(f"the runtime never finished: {totals}")

    run(scenario())

    with contextlib.closing(SqliteStore(connect(db, readonly=True))) as store:
        counts = {
            str(i): IntType.serializer().deserialize(entry.value)
            for i in range(ADDRESSES)
            for name, entry in store.state_get(Address(COUNTER, str(i))).items()
            if name == "count"
        }
    expected = expected_counts(starts)
    assert sum(expected.values()) == CHAINS * HOPS
    assert counts == dict(expected)
    assert killed_mid_flow >= 1  # the kills did land while messages were flowing


def pending(db: Path) -> bool:
    """Whether messages or timers were still waiting when the runtime died."""
    conn = connect(db, readonly=True)
    try:
        queued = conn.execute("SELECT COUNT(*) FROM mailbox").fetchone()[0]
        timers = conn.execute("SELECT COUNT(*) FROM timers").fetchone()[0]
    finally:
        conn.close()
    return bool(queued or timers)
