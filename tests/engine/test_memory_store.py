"""MemoryStore keeps the Store contract (the checks any store runs, rollback included)."""

from __future__ import annotations

import pytest

from statefun_core.engine import MemoryStore
from statefun_core.engine.conformance import STORE_CHECKS, check_store


@pytest.mark.parametrize("check", STORE_CHECKS.values(), ids=list(STORE_CHECKS))
def test_memory_store_keeps_the_store_contract(check):
    check(MemoryStore())


def test_check_store_runs_every_check_on_a_fresh_store():
    made = []

    def make() -> MemoryStore:
        made.append(MemoryStore())
        return made[-1]

    check_store(make)
    assert len(made) == len(STORE_CHECKS)


class ForgetfulStore(MemoryStore):
    """Commits what a failed transaction did: the contract must catch it."""

    def transaction(self):
        return _NoRollback(super().transaction())


class _NoRollback:
    def __init__(self, inner):
        self.inner = inner

    def __enter__(self):
        return self.inner.__enter__()

    def __exit__(self, *exc):
        self.inner.__exit__(None, None, None)
        return False


def test_the_contract_catches_a_store_that_does_not_roll_back():
    with pytest.raises(AssertionError, match="no trace"):
        STORE_CHECKS["rollback"](ForgetfulStore())


def test_transactions_do_not_nest():
    store = MemoryStore()
    with store.transaction(), pytest.raises(RuntimeError, match="nest"), store.transaction():
        pass
