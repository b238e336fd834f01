"""What a long-lived function server keeps in memory does not grow with what its requests
vary in: measured with tracemalloc over many requests after a warm-up, against a bound the
growth of one entry kept per request would clearly exceed."""

from __future__ import annotations

import gc
import itertools
import random
import tracemalloc
from collections.abc import Callable

from statefun_core import IntType, RequestReplyHandler, StatefulFunctions, ValueSpec
from statefun_core.plugins import make_plugin_manager
from statefun_core.testing.wire import missing_states, to_function

KiB = 1024


def retained_growth(send: Callable[[int], None], warm_up: int, requests: int) -> int:
    """Bytes still allocated after ``requests`` calls of ``send`` (each with a new number),
    over what was allocated after the first ``warm_up``."""
    numbers = itertools.count()
    for _ in range(warm_up):
        send(next(numbers))
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(requests):
            send(next(numbers))
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def subsets(names: list[str], count: int, seed: int) -> list[dict[str, int]]:
    """``count`` distinct subsets of ``names``: the states a runtime sends, the rest missing."""
    chosen = random.Random(seed)
    seen: set[frozenset[str]] = set()
    while len(seen) < count:
        seen.add(frozenset(name for name in names if chosen.random() < 0.5))
    return [dict.fromkeys(sorted(subset), 1) for subset in seen]


def test_requests_missing_ever_different_states_keep_no_reply_each() -> None:
    # A runtime mid-upgrade, or a misbehaving caller, sends any subset of a function's states:
    # each subset has its own missing-state reply, and there are 2**24 of them here.
    names = [f"state{i}" for i in range(24)]
    functions = StatefulFunctions()
    functions.register("bounded/many", lambda context, message: None, specs=[
        ValueSpec(name, IntType) for name in names
    ])  # fmt: skip
    handler = RequestReplyHandler(functions, plugins=make_plugin_manager(load_entrypoints=False))
    bodies = [
        to_function("bounded/many", f"id{number}", [1], states)
        for number, states in enumerate(subsets(names, 3500, seed=3))
    ]

    def send(number: int) -> None:
        assert missing_states(handler.handle_sync(bodies[number])), "each request misses a state"

    # some 1.4 KiB kept per request, over 4 MiB over these, if each reply is kept
    assert retained_growth(send, warm_up=500, requests=3000) < 256 * KiB
