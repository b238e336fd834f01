"""MemoryStore keeps the Store contract, rollback included."""

from __future__ import annotations

import pytest

from statefun_core.engine import (
    Address,
    EgressRecord,
    Envelope,
    MemoryStore,
    StateEntry,
    StateSpec,
    Timer,
    TypedValue,
)

A = Address("example/f", "a")
B = Address("example/f", "b")
VALUE = TypedValue("example/t", b"v")


def contents(store: MemoryStore) -> tuple:
    return (
        {address: store.mailbox_peek(address) for address in (A, B)},
        store.mailbox_addresses(),
        {address: store.in_flight_get(address) for address in store.in_flight_addresses()},
        store.specs_get("example/f"),
        {address: store.state_get(address) for address in (A, B)},
        store.timers(),
        store.timer_pending("a", "t"),
        store.egress_list(),
    )


@pytest.fixture
def store() -> MemoryStore:
    store = MemoryStore()
    with store.transaction():
        for address in (A, A, B):
            store.mailbox_append(Envelope(address, VALUE))
        store.in_flight_set(A, 1)
        store.spec_add("example/f", StateSpec("s", "example/t"))
        store.state_put(A, "s", StateEntry("example/t", b"1", 0, 0))
        store.timer_add(Timer(10, B, VALUE, A, "t", "a"))
        store.timer_add(Timer(5, B, VALUE, A))
        store.egress_append(EgressRecord("example/out", VALUE))
    return store


def test_seqs_grow_and_reads_are_ordered(store):
    assert [m.seq for m in store.mailbox_peek(A)] == [1, 2]
    assert store.mailbox_addresses() == [A, B]
    assert store.mailbox_count(A) == 2 and store.mailbox_count(A, after_seq=1) == 1
    assert [t.due_ms for t in store.timers()] == [5, 10]
    assert store.timer_next_due() == 5
    assert [r.seq for r in store.egress_list()] == [6]


def test_remove_pop_and_cancel(store):
    with store.transaction():
        store.mailbox_remove(A, 1)
        assert [m.seq for m in store.mailbox_peek(A)] == [2]
        store.mailbox_remove(A, 2)
        assert store.mailbox_addresses() == [B]
        assert [t.due_ms for t in store.timers_pop_due(5)] == [5]
        assert store.timer_cancel("a", "t")
        assert not store.timer_cancel("a", "t")
        assert store.timer_next_due() is None


def test_a_failed_transaction_undoes_every_change(store):
    before = contents(store)

    with pytest.raises(RuntimeError, match="boom"), store.transaction():
        store.mailbox_append(Envelope(Address("example/f", "new"), VALUE))
        store.mailbox_append(Envelope(A, VALUE))
        store.mailbox_remove(A, 2)
        store.mailbox_remove(B, 3)
        store.in_flight_clear(A)
        store.in_flight_set(B, 3)
        store.spec_add("example/f", StateSpec("other", "example/t"))
        store.state_put(A, "s", StateEntry("example/t", b"2", 1, 1))
        store.state_delete(A, "s")
        store.state_put(B, "s", StateEntry("example/t", b"3", 1, 1))
        store.timers_pop_due(100)
        store.timer_add(Timer(1, A, VALUE, B, "t", "a"))
        store.egress_append(EgressRecord("example/out", VALUE))
        raise RuntimeError("boom")

    assert contents(store) == before
    assert store.mailbox_peek(Address("example/f", "new")) == []
    assert store.mailbox_addresses() == [A, B]


def test_transactions_do_not_nest(store):
    with store.transaction(), pytest.raises(RuntimeError, match="nest"), store.transaction():
        pass
