"""The Harness runs the same policy: a test can assert that a message was dead-lettered."""

from __future__ import annotations

import asyncio

import pytest

from statefun_core import FunctionFailedError
from statefun_core.plugins import make_plugin_manager
from statefun_core.testing import Harness

from .functions import AWAITING, DEAD_LETTERS, FINAL, NOT_FINAL, OUT, STRICT, SYNC, make_functions


def harness() -> Harness:
    plugins = make_plugin_manager(load_entrypoints=False)
    return Harness(make_functions(), plugins=plugins, dead_letters=DEAD_LETTERS)


@pytest.mark.parametrize("typename", [SYNC, AWAITING])
def test_a_dead_lettered_message_leaves_its_address_and_the_next_one_runs(typename: str) -> None:
    h = harness()
    for n in (1, FINAL, 2):
        h.send(typename, "a", int_value=n)
    h.run()
    h.assert_state(typename, "a", total=3, log=[1, 2])
    record = h.assert_dead_lettered(typename, "a")
    assert record.error_message == f"{FINAL} can never succeed"
    assert [r.message_value for r in h.dead_letters] == [record.message_value]
    assert sorted(m.target.id for m in h.sent if m.target.typename == OUT) == ["1", "2"]
    # the address is not stuck: a later message runs
    h.send(typename, "a", int_value=4).run()
    h.assert_state(typename, "a", total=7)


def test_assert_dead_lettered_by_error_class_and_through_run_async() -> None:
    from statefun_core import FinalFailure

    h = harness()
    h.send(SYNC, "b", int_value=FINAL)
    asyncio.run(h.run_async())
    h.assert_dead_lettered(SYNC, "b", FinalFailure)
    with pytest.raises(AssertionError, match=r"no message to test/sync-counter/b .* KeyError"):
        h.assert_dead_lettered(SYNC, "b", KeyError)
    with pytest.raises(AssertionError, match="no message to test/strict/x"):
        h.assert_dead_lettered(STRICT, "x")


def test_any_other_failure_still_fails_and_stays_queued() -> None:
    h = harness()
    h.send(SYNC, "c", int_value=NOT_FINAL)
    with pytest.raises(FunctionFailedError):
        h.run()
    assert h.dead_letters == []
