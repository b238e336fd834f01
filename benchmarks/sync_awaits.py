"""What ``handle_sync`` costs per request by how an async function awaits, in one process.

    python benchmarks/sync_awaits.py [--rounds 20] [--requests 2000]

Three async functions, each reading and writing one int state (the greeter's shape):

  never     never awaits: called with no event loop at all (the fast path)
  quick     awaits a coroutine that returns at once: the batch runs as one task of the
            thread's event loop, as under the official SDK's ``asyncio.run`` (so that
            ``asyncio.timeout``, task groups and HTTP clients work in it)
  suspends  awaits ``asyncio.sleep(0)``, which really suspends: a task of that loop too

Rounds interleave the three (the order rotates). Reports the median microseconds per request
of each and its ratio to ``never``, measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from statefun_core import (
    Context,
    IntType,
    Message,
    RequestReplyHandler,
    StatefulFunctions,
    ValueSpec,
    make_plugin_manager,
)
from statefun_core.testing.wire import to_function, typed_value

SPECS = [ValueSpec("n", IntType)]


async def at_once() -> int:
    return 1


def make_functions() -> StatefulFunctions:
    functions = StatefulFunctions()

    @functions.bind("bench/never", specs=SPECS)
    async def never(context: Context, message: Message) -> None:
        context.storage.n = (context.storage.n or 0) + 1

    @functions.bind("bench/quick", specs=SPECS)
    async def quick(context: Context, message: Message) -> None:
        context.storage.n = (context.storage.n or 0) + await at_once()

    @functions.bind("bench/suspends", specs=SPECS)
    async def suspends(context: Context, message: Message) -> None:
        await asyncio.sleep(0)
        context.storage.n = (context.storage.n or 0) + 1

    return functions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--requests", type=int, default=2000, help="per block")
    args = parser.parse_args()

    handler = RequestReplyHandler(
        make_functions(), plugins=make_plugin_manager(load_entrypoints=False)
    )
    kinds = ["never", "quick", "suspends"]
    bodies = {
        kind: to_function(f"bench/{kind}", "1", [typed_value(IntType, 1)], {"n": 3})
        for kind in kinds
    }
    for body in bodies.values():  # warm up
        for _ in range(args.requests):
            handler.handle_sync(body)
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    for round_ in range(args.rounds):
        for kind in kinds[round_ % 3 :] + kinds[: round_ % 3]:
            body = bodies[kind]
            started = time.perf_counter()
            for _ in range(args.requests):
                handler.handle_sync(body)
            times[kind].append((time.perf_counter() - started) / args.requests * 1e6)
    baseline = statistics.median(times["never"])
    print(f"{'function':10} {'us/request':>11} {'/ never':>8}")
    for kind in kinds:
        median = statistics.median(times[kind])
        print(f"{kind:10} {median:11.2f} {median / baseline:8.2f}")


if __name__ == "__main__":
    main()
