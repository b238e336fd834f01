"""statefun-local end to end: the greeter over 1,000 addresses on one machine.

    python benchmarks/local/bench.py [--addresses 1000] [--per-address 20] [--rounds 5]
    python benchmarks/local/bench.py --addresses 5 --per-address 3 --rounds 1 \
        --latency-samples 3 --timeout 60          # what local/tests runs: does it work
    nox -s bench_local

The function server (``examples/greeter/app.py``, statefun-aiohttp) runs in its own process;
the runtime runs in this one, on a fresh SQLite file. Every message is durable: a delivery is
counted when the reply that consumed it is committed. Each greeter message makes two
deliveries (``greeter``, then ``inbox``, which writes the Kafka egress record).

- each phase starts warm: one greeting per address first (state discovered, connections open);
- batching: ``per-address`` messages queued for every address before the runtime starts: each
  address is sent its first message alone, then the others in one batch (as the runtime does);
- no batching: rounds of one message per address, each round sent through the runtime's
  ingress path (one commit each) once the previous one has drained, so batches hold one message;
- latency: one message at a time, from ``send`` to its egress record being committed;
- commit cost: the time the engine spends applying one reply (parse, apply, SQLite commit).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from statefun_local import LocalRuntime, make_value, parse_module
from statefun_local.store import SqliteStore
from statefun_local.transport import HttpTransport

from statefun_core.engine import Address, Envelope
from statefun_core.testing.endpoint import free_port

ROOT = Path(__file__).resolve().parents[2]
GREETER = "com.example.fns/greeter"


def module_text(port: int) -> str:
    return f"""
kind: io.statefun.endpoints.v2/http
spec:
  functions: com.example.fns/*
  urlPathTemplate: http://127.0.0.1:{port}/statefun
---
kind: io.statefun.kafka.v1/egress
spec:
  id: com.example/greets
  address: kafka:9092
"""


async def wait_for_server(port: int) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.post(f"http://127.0.0.1:{port}/statefun", data=b""):
                    return
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
    raise RuntimeError("the function server did not start")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux), or 0 where /proc is missing."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds used by this process (the runtime) and by the function server meanwhile."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.start = (time.process_time(), cpu_seconds(server_pid))

    def read(self) -> tuple[float, float]:
        return (time.process_time() - self.start[0], cpu_seconds(self.server_pid) - self.start[1])


class CommitTimer:
    """Wraps the engine's ``complete`` to time it (parse + apply + one SQLite commit)."""

    def __init__(self, runtime: LocalRuntime) -> None:
        self.samples: list[float] = []
        self.batch_sizes: list[int] = []
        engine = runtime.engine
        complete = engine.complete

        def timed(batch: Any, reply: bytes, *rest: Any) -> Any:
            start = time.perf_counter()
            result = complete(batch, reply, *rest)
            self.samples.append(time.perf_counter() - start)
            self.batch_sizes.append(len(batch.messages))
            return result

        engine.complete = timed  # type: ignore[method-assign]


async def warm_up(
    port: int, db: Path, addresses: int, transport: HttpTransport, timeout: float
) -> None:
    """One greeting per address: state discovery done, keep-alive connections open."""
    module = parse_module(module_text(port))
    async with LocalRuntime(module, db, transport=transport, offline=True) as runtime:
        for i in range(addresses):
            name = f"user{i}"
            await runtime.send(Address(GREETER, name), make_value("string", name))
        await runtime.wait_until_idle(timeout=timeout)


def preload(db: Path, addresses: int, per_address: int) -> None:
    store = SqliteStore.open(db)
    with store.transaction():
        for _ in range(per_address):
            for i in range(addresses):
                name = f"user{i}"
                store.mailbox_append(Envelope(Address(GREETER, name), make_value("string", name)))
    store.close()


async def finish(
    runtime: LocalRuntime, start: float, cpu: CpuMeter, timer: CommitTimer, greetings: int
) -> dict[str, Any]:
    """Stop a timed run: deliveries, seconds, rates (durable messages and greetings in), the
    commit timer and the CPU used."""
    elapsed = time.perf_counter() - start
    used = cpu.read()
    await runtime.stop()
    deliveries = runtime.delivered
    if deliveries != 2 * greetings:  # each greeting: greeter, then inbox
        raise RuntimeError(f"{deliveries} deliveries for {greetings} greetings, not twice as many")
    return {
        "deliveries": deliveries,
        "seconds": elapsed,
        "rate": deliveries / elapsed,
        "ingress_rate": greetings / elapsed,
        "timer": timer,
        "cpu": used,
    }


async def batching(
    port: int,
    tmp: Path,
    addresses: int,
    per_address: int,
    server_pid: int,
    transport: HttpTransport,
    timeout: float,
) -> dict[str, Any]:
    db = tmp / "batching.db"
    await warm_up(port, db, addresses, transport, timeout)
    preload(db, addresses, per_address)
    runtime = LocalRuntime(parse_module(module_text(port)), db, transport=transport, offline=True)
    cpu = CpuMeter(server_pid)
    start = time.perf_counter()
    await runtime.start()
    timer = CommitTimer(runtime)
    await runtime.wait_until_idle(timeout=timeout)
    return await finish(runtime, start, cpu, timer, greetings=addresses * per_address)


async def no_batching(
    port: int,
    tmp: Path,
    addresses: int,
    rounds: int,
    server_pid: int,
    transport: HttpTransport,
    timeout: float,
) -> dict[str, Any]:
    await warm_up(port, tmp / "rounds.db", addresses, transport, timeout)
    runtime = LocalRuntime(
        parse_module(module_text(port)), tmp / "rounds.db", transport=transport, offline=True
    )
    await runtime.start()
    timer = CommitTimer(runtime)
    cpu = CpuMeter(server_pid)
    start = time.perf_counter()
    for _ in range(rounds):
        for i in range(addresses):
            name = f"user{i}"
            await runtime.send(Address(GREETER, name), make_value("string", name))
        await runtime.wait_until_idle(timeout=timeout)
    return await finish(runtime, start, cpu, timer, greetings=addresses * rounds)


async def latency(port: int, tmp: Path, addresses: int, samples: int) -> list[float]:
    runtime = LocalRuntime(parse_module(module_text(port)), tmp / "latency.db", offline=True)
    await runtime.start()
    results = []
    last = 0
    for i in range(samples + 20):
        name = f"user{(i * 7919) % addresses}"
        start = time.perf_counter()
        await runtime.send(Address(GREETER, name), make_value("string", name))
        records = await runtime.wait_egress(last, timeout=30)
        if not records:
            raise RuntimeError("no egress record arrived")
        last = records[-1]["seq"]
        if i >= 20:  # warm-up: connections, state discovery
            results.append(time.perf_counter() - start)
    await runtime.stop()
    return results


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def show_run(label: str, result: dict[str, Any]) -> None:
    timer: CommitTimer = result["timer"]
    print(
        f"{label}: {result['deliveries']} deliveries in {result['seconds']:.2f} s = "
        f"{result['rate']:,.0f} durable messages/s "
        f"({result['ingress_rate']:,.0f} greetings/s in)"
    )
    print(
        f"  batches: {len(timer.batch_sizes)}, mean size "
        f"{statistics.mean(timer.batch_sizes):.1f}; apply+commit per batch: p50 "
        f"{pct(timer.samples, 0.5) * 1e3:.3f} ms, p99 {pct(timer.samples, 0.99) * 1e3:.3f} ms,"
        f" mean {statistics.mean(timer.samples) * 1e3:.3f} ms"
    )
    runtime_cpu, server_cpu = result["cpu"]
    if runtime_cpu:
        print(
            f"  CPU: runtime {runtime_cpu:.2f} s ({result['deliveries'] / runtime_cpu:,.0f} "
            f"messages per runtime CPU-second), function server {server_cpu:.2f} s"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addresses", type=int, default=1000)
    parser.add_argument("--per-address", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--latency-samples", type=int, default=300)
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds a phase may take before the run fails"
    )
    args = parser.parse_args()

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "examples/greeter/app.py"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await wait_for_server(port)
        print(
            f"statefun-local bench: Python {platform.python_version()}, "
            f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; "
            f"{args.addresses} addresses; function server in its own process"
        )
        with tempfile.TemporaryDirectory(prefix="statefun-bench-") as tmp_name:
            tmp = Path(tmp_name)
            transport = HttpTransport()
            show_run(
                f"batching ({args.per_address} messages/address queued)",
                await batching(
                    port, tmp, args.addresses, args.per_address, server.pid, transport, args.timeout
                ),
            )
            show_run(
                f"no batching ({args.rounds} rounds of 1 message/address)",
                await no_batching(
                    port, tmp, args.addresses, args.rounds, server.pid, transport, args.timeout
                ),
            )
            await transport.close()
            samples = await latency(port, tmp, args.addresses, args.latency_samples)
            print(
                f"latency ingress -> egress (greeter -> inbox -> egress, one at a time): "
                f"p50 {pct(samples, 0.5) * 1e3:.2f} ms, p99 {pct(samples, 0.99) * 1e3:.2f} ms "
                f"over {len(samples)} messages"
            )
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    asyncio.run(main())
