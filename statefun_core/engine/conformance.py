"""Checks that a :class:`~statefun_core.engine.Store` keeps the contract the engine relies on.

Run them against any store, each on a fresh, empty one::

    @pytest.mark.parametrize("check", STORE_CHECKS.values(), ids=list(STORE_CHECKS))
    def test_store_contract(check, tmp_path):
        check(SqliteStore(tmp_path / "db.sqlite"))

or all at once with :func:`check_store`. A failed check raises ``AssertionError``.
"""

from __future__ import annotations

from typing import Callable

from .errors import StateTypeError
from .model import (
    Address,
    EgressRecord,
    Envelope,
    ExpireMode,
    StateEntry,
    StateSpec,
    Timer,
    TypedValue,
)
from .store import Store

__all__ = ["STORE_CHECKS", "check_store"]

A = Address("example/f", "a")
B = Address("example/f", "b")
C = Address("example/g", "a")
VALUE = TypedValue("example/t", b"\x00\xff value")
NO_VALUE = TypedValue("example/t", b"", has_value=False)


class _Rollback(Exception):
    pass


def _fill(store: Store) -> list[int]:
    with store.transaction():
        return [
            store.mailbox_append(Envelope(B, VALUE)),
            store.mailbox_append(Envelope(A, NO_VALUE, caller=C)),
            store.mailbox_append(Envelope(B, VALUE, caller=A)),
            store.mailbox_append(Envelope(A, VALUE)),
        ]


def check_mailbox(store: Store) -> None:
    seqs = _fill(store)
    assert seqs == sorted(seqs) and len(set(seqs)) == 4, f"seqs must grow: {seqs}"
    with store.transaction():
        queued = store.mailbox_peek(A)
        assert [m.seq for m in queued] == [seqs[1], seqs[3]]
        assert queued[0] == Envelope(A, NO_VALUE, C, seqs[1]), queued[0]
        assert queued[1] == Envelope(A, VALUE, None, seqs[3]), queued[1]
        assert store.mailbox_peek(A, limit=1) == queued[:1], "limit keeps the oldest"
        assert store.mailbox_peek(A, limit=5) == queued
        assert store.mailbox_addresses() == [B, A], "addresses go by their oldest message"
        assert store.mailbox_count(A) == 2
        assert store.mailbox_count(A, after_seq=seqs[1]) == 1
        assert store.mailbox_peek(C) == [] and store.mailbox_count(C) == 0
        assert store.mailbox_peek(C, limit=1) == []

        store.mailbox_remove(B, seqs[0])
        assert [m.seq for m in store.mailbox_peek(B)] == [seqs[2]]
        assert store.mailbox_addresses() == [A, B]
        store.mailbox_remove(B, seqs[3])
        assert store.mailbox_peek(B) == []
        assert store.mailbox_addresses() == [A]
        store.mailbox_remove(C, seqs[3])


def check_in_flight(store: Store) -> None:
    with store.transaction():
        assert store.in_flight_get(A) is None
        store.in_flight_set(A, 3)
        store.in_flight_set(B, 7)
        store.in_flight_set(A, 5)
        assert store.in_flight_get(A) == 5
        assert sorted(store.in_flight_addresses()) == [A, B]
        store.in_flight_clear(B)
        store.in_flight_clear(C)
        assert store.in_flight_addresses() == [A]


def check_specs(store: Store) -> None:
    spec = StateSpec("seen", "io.statefun.types/int")
    ttl = StateSpec("session", "example/t", ExpireMode.AFTER_INVOKE, expire_after_ms=60_000)
    with store.transaction():
        assert store.specs_get("example/f") == {}
        store.spec_add("example/f", spec)
        store.spec_add("example/f", ttl)
        store.spec_add("example/g", spec)
    with store.transaction():
        assert store.specs_get("example/f") == {"seen": spec, "session": ttl}
        assert store.specs_get("example/g") == {"seen": spec}
        assert store.specs_get("example/f")["session"].expire_mode == ExpireMode.AFTER_INVOKE


def check_specs_keep_stored_types(store: Store) -> None:
    """A restart forgets the specs, not the values: registering a name again with another
    type than a value of it is stored as raises ``StateTypeError`` and registers nothing."""
    stored = StateEntry("io.statefun.types/int", b"\x08\x07", written_ms=1, accessed_ms=1)
    with store.transaction():
        store.spec_add("example/f", StateSpec("seen", "io.statefun.types/int"))
        store.state_put(B, "seen", stored)
        store.state_put(C, "other", stored)
        store.specs_forget()
    with store.transaction():
        try:
            store.spec_add("example/f", StateSpec("seen", "io.statefun.types/string"))
        except StateTypeError as error:
            assert "'seen' of example/f" in str(error), error
        else:
            raise AssertionError("a spec of another type than its stored values was accepted")
        assert store.specs_get("example/f") == {}
        # the same type again, another name, or another function type's values: accepted
        store.spec_add("example/f", StateSpec("seen", "io.statefun.types/int"))
        store.spec_add("example/f", StateSpec("other", "io.statefun.types/string"))
        store.spec_add("example/g", StateSpec("seen", "io.statefun.types/string"))
        assert set(store.specs_get("example/f")) == {"seen", "other"}


def check_state(store: Store) -> None:
    entry = StateEntry("example/t", b"\x00\xff", written_ms=10, accessed_ms=20)
    empty = StateEntry("io.statefun.types/int", b"", written_ms=1, accessed_ms=1)
    with store.transaction():
        assert store.state_get(A) == {}
        store.state_put(A, "x", entry)
        store.state_put(A, "zero", empty)
        store.state_put(B, "x", empty)
    with store.transaction():
        assert store.state_get(A) == {"x": entry, "zero": empty}
        store.state_put(A, "x", StateEntry("example/t", b"2", 30, 30))
        store.state_delete(A, "zero")
        store.state_delete(A, "never")
        store.state_delete(C, "x")
        assert store.state_get(A) == {"x": StateEntry("example/t", b"2", 30, 30)}
        assert store.state_get(B) == {"x": empty}


def check_timers(store: Store) -> None:
    with store.transaction():
        late = store.timer_add(Timer(200, B, VALUE, A, "t", "a"))
        early = store.timer_add(Timer(100, B, NO_VALUE, A))
        tie = store.timer_add(Timer(200, C, VALUE, B, "t", "b"))
        assert late < early < tie
        assert store.timer_next_due() == 100
        assert [t.seq for t in store.timers()] == [early, late, tie]
        assert store.timers()[0] == Timer(100, B, NO_VALUE, A, None, "", early)
        assert store.timer_pending("a", "t") and store.timer_pending("b", "t")
        assert not store.timer_pending("c", "t")

        assert store.timers_pop_due(99) == []
        assert [t.seq for t in store.timers_pop_due(200)] == [early, late, tie]
        assert store.timers() == [] and store.timer_next_due() is None
        assert not store.timer_pending("a", "t"), "a delivered token is free again"

        again = store.timer_add(Timer(300, B, VALUE, A, "t", "a"))
        assert again > tie
        assert not store.timer_cancel("b", "t")
        assert store.timer_cancel("a", "t")
        assert not store.timer_cancel("a", "t")
        assert store.timers() == []


def check_egress(store: Store) -> None:
    with store.transaction():
        first = store.egress_append(EgressRecord("example/out", VALUE))
        second = store.egress_append(EgressRecord("example/log", NO_VALUE))
    with store.transaction():
        assert first < second
        assert store.egress_list() == [
            EgressRecord("example/out", VALUE, first),
            EgressRecord("example/log", NO_VALUE, second),
        ]
        assert store.egress_list(after_seq=first) == [EgressRecord("example/log", NO_VALUE, second)]


def check_rollback(store: Store) -> None:
    seqs = _fill(store)
    with store.transaction():
        store.in_flight_set(A, seqs[1])
        store.spec_add("example/f", StateSpec("seen", "example/t"))
        store.state_put(A, "seen", StateEntry("example/t", b"1", 0, 0))
        store.timer_add(Timer(100, B, VALUE, A, "t", "a"))
        store.egress_append(EgressRecord("example/out", VALUE))

    def snapshot() -> tuple[object, ...]:
        with store.transaction():
            return (
                store.mailbox_peek(A),
                store.mailbox_peek(B),
                store.mailbox_peek(C),
                store.mailbox_addresses(),
                sorted(store.in_flight_addresses()),
                store.in_flight_get(A),
                store.specs_get("example/f"),
                store.state_get(A),
                store.state_get(B),
                store.timers(),
                store.timer_pending("a", "t"),
                store.egress_list(),
            )

    before = snapshot()
    try:
        with store.transaction():
            store.mailbox_append(Envelope(C, VALUE))
            store.mailbox_remove(A, seqs[3])
            store.mailbox_remove(B, seqs[0])
            store.in_flight_clear(A)
            store.in_flight_set(B, seqs[2])
            store.spec_add("example/f", StateSpec("other", "example/t"))
            store.state_delete(A, "seen")
            store.state_put(B, "seen", StateEntry("example/t", b"2", 1, 1))
            store.timers_pop_due(1_000)
            store.timer_add(Timer(5, A, VALUE, B, "u", "b"))
            store.egress_append(EgressRecord("example/out", VALUE))
            raise _Rollback
    except _Rollback:
        pass
    assert snapshot() == before, "a transaction that raises must leave no trace"
    seq = _fill(store)[0]
    assert seq > seqs[-1], "seqs keep growing after a rollback"


STORE_CHECKS: dict[str, Callable[[Store], None]] = {
    "mailbox": check_mailbox,
    "in_flight": check_in_flight,
    "specs": check_specs,
    "specs_keep_stored_types": check_specs_keep_stored_types,
    "state": check_state,
    "timers": check_timers,
    "egress": check_egress,
    "rollback": check_rollback,
}


def check_store(make_store: Callable[[], Store]) -> None:
    """Run every check, each on a fresh store from ``make_store``."""
    for check in STORE_CHECKS.values():
        check(make_store())
