"""The fuzzers' findings, kept: the minimized corpus and every crash reproducer, replayed
through both drivers of the handler, plus a short seeded run of the same generator.

fuzz/corpus/ and fuzz/crashes/ hold request bytes (what reached the handler), not the
fuzzer's raw inputs, so they stay meaningful when the generator changes (see fuzz/README.md).
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from .fuzz_target import RandomSource, check, generate, make_handler

FUZZ = Path(__file__).resolve().parents[2] / "fuzz"
KEPT = sorted([*(FUZZ / "corpus").glob("*"), *(FUZZ / "crashes").glob("*")])
HANDLER = make_handler()


def test_the_corpus_is_kept() -> None:
    assert len(KEPT) >= 50


@pytest.mark.parametrize("path", KEPT, ids=[path.name for path in KEPT])
def test_kept_input(path: Path) -> None:
    check(HANDLER, path.read_bytes())


def test_a_seeded_run_reaches_every_outcome() -> None:
    outcomes: Counter[str] = Counter()
    for seed in range(3000):
        outcome = check(HANDLER, generate(RandomSource(random.Random(seed))))
        outcomes[outcome[0] if outcome[0] != "rejected" else outcome[1]] += 1
    kinds = ["ok", "incomplete", "failed", "MalformedRequestError", "FunctionNotFoundError"]
    for kind in [*kinds, "RequestTooLargeError", "LimitExceededError"]:
        assert outcomes[kind] > 0, outcomes


def test_sync_and_async_disagreeing_is_caught() -> None:
    """The differential check itself can fail: a handler whose drivers differ is reported."""

    class Skewed(type(HANDLER)):  # type: ignore[misc]
        def handle_sync(self, data: bytes, headers: object = None) -> bytes:
            return b""

    skewed = Skewed(HANDLER.functions, plugins=HANDLER.plugins, limits=HANDLER.limits)
    from .wire import counter_request

    with pytest.raises(AssertionError):
        check(skewed, counter_request("1", 0, 1))
