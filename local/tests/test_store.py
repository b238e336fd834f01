"""SqliteStore keeps the Store contract the engine relies on, on a real SQLite file."""

from __future__ import annotations

import contextlib
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import pytest
from statefun_local.store import SCHEMA_VERSION, SqliteStore, connect

from statefun_core.engine import (
    Address,
    EgressRecord,
    Envelope,
    ExpireMode,
    StateEntry,
    StateSpec,
    StateTypeError,
    Store,
    Timer,
    TraceContext,
    TypedValue,
)
from statefun_core.engine.conformance import STORE_CHECKS


@pytest.mark.parametrize("check", STORE_CHECKS.values(), ids=list(STORE_CHECKS))
def test_sqlite_store_keeps_the_store_contract(
    check: Callable[[Store], None], tmp_path: Path
) -> None:
    store = SqliteStore.open(tmp_path / "db.sqlite")
    try:
        check(store)
    finally:
        store.close()


A = Address("example/f", "a")
B = Address("example/f", "b")
C = Address("example/g", "a")
VALUE = TypedValue("example/t", b"v")


def test_a_new_database_records_schema_version_2(tmp_path: Path) -> None:
    store = SqliteStore.open(tmp_path / "db.sqlite")
    assert store.meta_get("schema_version") == SCHEMA_VERSION == 2
    store.close()


def test_a_database_of_version_1_is_upgraded_so_that_version_1_refuses_it(tmp_path: Path) -> None:
    """Version 1's code inserts stuck rows without the call_attempts column a runtime of this
    version adds ('table stuck has 9 columns but 8 values'): once opened here, the database
    says version 2, which version 1 refuses when it opens it (its check: exactly 1)."""
    db = tmp_path / "db.sqlite"
    store = SqliteStore.open(db)
    store.meta_put("schema_version", 1)
    store.close()
    store = SqliteStore.open(db)
    assert store.meta_get("schema_version") == 2
    store.close()


def test_a_database_of_a_newer_schema_version_is_refused_and_left_closed(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    store = SqliteStore.open(db)
    store.meta_put("schema_version", SCHEMA_VERSION + 1)
    store.close()
    with pytest.raises(RuntimeError, match="schema version 3, written by a newer") as refused:
        SqliteStore.open(db)
    assert refused.value and not (tmp_path / "db.sqlite-wal").exists()  # no connection left


def test_a_read_only_connection_needs_the_file_and_can_not_write(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    with pytest.raises(FileNotFoundError):
        connect(db, readonly=True)
    assert not db.exists()
    SqliteStore.open(db).close()
    with contextlib.closing(connect(db, readonly=True)) as conn:
        assert conn.execute("SELECT value FROM meta").fetchall() == [(SCHEMA_VERSION,)]
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            conn.execute("DELETE FROM meta")


def test_connections_can_be_used_from_another_thread(tmp_path: Path) -> None:
    store = SqliteStore.open(tmp_path / "db.sqlite")
    readonly = contextlib.closing(connect(tmp_path / "db.sqlite", readonly=True))
    with readonly as conn, ThreadPoolExecutor(1) as thread:
        assert thread.submit(store.meta_get, "schema_version").result() == SCHEMA_VERSION
        assert thread.submit(conn.execute, "SELECT 1").result().fetchone() == (1,)
    store.close()


def test_connections_wait_5_s_for_a_lock_and_sync_as_asked(tmp_path: Path) -> None:
    normal = SqliteStore.open(tmp_path / "normal.sqlite")
    full = SqliteStore.open(tmp_path / "full.sqlite", synchronous="FULL")
    readonly = connect(tmp_path / "full.sqlite", readonly=True)
    for conn in (normal.conn, full.conn, readonly):
        assert conn.execute("PRAGMA busy_timeout").fetchone() == (5000,)
    assert normal.conn.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
    assert full.conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    for conn in (normal.conn, full.conn, readonly):
        conn.close()


def test_messages_and_egress_records_are_stamped_by_the_clock(tmp_path: Path) -> None:
    for clock, stamp in ((None, 0), (lambda: 1234, 1234)):
        store = SqliteStore.open(tmp_path / f"{stamp}.sqlite", clock_ms=clock)
        store.mailbox_append(Envelope(A, VALUE))
        store.egress_append(EgressRecord("example/out", VALUE))
        stamps = "SELECT created_ms FROM mailbox UNION ALL SELECT created_ms FROM egress"
        assert store.conn.execute(stamps).fetchall() == [(stamp,), (stamp,)]
        store.close()


def test_a_closed_store_refuses_queries(tmp_path: Path) -> None:
    store = SqliteStore.open(tmp_path / "db.sqlite")
    store.close()
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        store.meta_get("schema_version")


def test_a_nested_transaction_joins_the_enclosing_one(tmp_path: Path) -> None:
    store = SqliteStore.open(tmp_path / "db.sqlite")
    with pytest.raises(KeyError), store.transaction():
        with store.transaction():
            store.meta_put("key", 1)
        raise KeyError
    assert store.meta_get("key") is None
    store.close()


def test_a_transaction_sqlite_rolled_back_by_itself_raises_its_own_error(tmp_path: Path) -> None:
    store = SqliteStore.open(tmp_path / "db.sqlite")
    interrupts = iter([1])  # a progress handler's non-zero return interrupts the statement

    with pytest.raises(sqlite3.OperationalError, match="interrupted"), store.transaction():
        store.meta_put("a", 1)
        store.conn.set_progress_handler(lambda: next(interrupts, 0), 1)
        store.meta_put("b", 2)  # interrupted in a transaction: SQLite rolls it all back
    store.conn.set_progress_handler(None, 1)
    assert not store.conn.in_transaction
    assert (store.meta_get("a"), store.meta_get("b")) == (None, None)
    store.close()


def test_a_mailbox_count_takes_every_queued_message_by_default(tmp_path: Path) -> None:
    store = SqliteStore.open(tmp_path / "db.sqlite")
    with store.transaction():
        for address in (B, A, B):
            store.mailbox_append(Envelope(address, VALUE))
    assert store.mailbox_count(B) == 2  # seqs 1 and 3
    store.close()


def test_a_mailbox_count_after_a_seq_takes_the_messages_queued_after_it(tmp_path: Path) -> None:
    store = SqliteStore.open(tmp_path / "db.sqlite")
    with store.transaction():
        for address in (B, A, A, A):
            store.mailbox_append(Envelope(address, VALUE))
    assert [store.mailbox_count(A, after) for after in (0, 1, 2, 3, 4, 5)] == [3, 3, 2, 1, 0, 0]
    store.close()


def test_queue_depths_count_each_addresses_queued_messages(tmp_path: Path) -> None:
    store = SqliteStore.open(tmp_path / "db.sqlite")
    assert store.queue_depths() == {}
    with store.transaction():
        for address in (B, A, B, C, B):
            store.mailbox_append(Envelope(address, VALUE))
    assert store.queue_depths() == {B: 3, A: 1, C: 1}
    store.close()


SPEC = StateSpec("seen", "example/int", ExpireMode.AFTER_WRITE, 5000)


def test_forgotten_specs_stay_forgotten_and_their_values_stay(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    store = SqliteStore.open(db)
    with store.transaction():
        store.spec_add(A.typename, SPEC)
        store.state_put(A, "seen", StateEntry("example/int", b"1", 10, 20))
    assert store.all_specs() == {A.typename: {"seen": SPEC}}
    with store.transaction():
        store.specs_forget()
    assert store.all_specs() == {} and store.specs_get(A.typename) == {}
    store.close()
    store = SqliteStore.open(db)
    assert store.all_specs() == {}
    assert store.state_get(A) == {"seen": StateEntry("example/int", b"1", 10, 20)}
    store.close()


def test_a_spec_may_not_change_the_type_of_values_stored_under_its_name(tmp_path: Path) -> None:
    store = SqliteStore.open(tmp_path / "db.sqlite")
    with store.transaction():
        store.state_put(A, "seen", StateEntry("example/int", b"1", 10, 20))
    with pytest.raises(StateTypeError, match="stored as example/int"):
        store.spec_add(A.typename, StateSpec("seen", "example/string"))
    assert store.all_specs() == {}
    store.spec_add(A.typename, SPEC)  # the type of its values
    store.spec_add(C.typename, StateSpec("seen", "example/string"))  # another function's
    assert store.all_specs() == {
        A.typename: {"seen": SPEC},
        C.typename: {"seen": StateSpec("seen", "example/string")},
    }
    store.close()


def test_a_trace_context_without_a_tracestate_reads_back_with_an_empty_one(tmp_path: Path) -> None:
    bare = TraceContext("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    store = SqliteStore.open(tmp_path / "db.sqlite")
    with store.transaction():
        store.mailbox_append(Envelope(A, VALUE, trace=bare))
        store.timer_add(Timer(100, A, VALUE, B, trace=bare))
        store.egress_append(EgressRecord("example/out", VALUE, trace=bare))
    assert [m.trace for m in store.mailbox_peek(A)] == [bare]
    assert [t.trace for t in store.timers()] == [bare]
    assert [r.trace for r in store.egress_list()] == [bare]
    assert bare.tracestate == ""
    store.close()


def test_a_reopened_store_has_the_in_flight_markers_in_the_order_they_were_set(
    tmp_path: Path,
) -> None:
    db = tmp_path / "db.sqlite"
    store = SqliteStore.open(db)
    with store.transaction():
        for address in (B, A, C):
            store.in_flight_set(address, 1)
        store.in_flight_clear(C)
    store.close()
    store = SqliteStore.open(db)
    assert store.in_flight_addresses() == [B, A]
    store.in_flight_set(C, 2)
    store.close()
    store = SqliteStore.open(db)
    assert store.in_flight_addresses() == [B, A, C]
    store.close()


def test_finding_no_due_timer_takes_no_write_lock(tmp_path: Path) -> None:
    store = SqliteStore.open(tmp_path / "db.sqlite")
    store.timer_add(Timer(100, A, VALUE, B))
    with store.transaction():
        assert store.timers_pop_due(99) == []
        assert not store.conn.in_transaction
    store.close()


def test_ingress_offsets_and_positions_are_kept_per_ingress_across_a_restart(
    tmp_path: Path,
) -> None:
    store = SqliteStore.open(tmp_path / "db.sqlite")
    with store.transaction():
        for partition, offset in ((0, 5), (0, 7), (1, 3)):
            store.kafka_offset_put("in", "t", partition, offset)
        store.kafka_offset_put("other", "t", 0, 9)
        for sequence in ("42", "43"):
            store.kinesis_position_put("in", "s", "shard-1", sequence)
        store.kinesis_position_put("other", "s", "shard-1", "1")
    store.close()
    store = SqliteStore.open(tmp_path / "db.sqlite")
    assert store.kafka_offsets("in") == {("t", 0): 7, ("t", 1): 3}
    assert store.kinesis_positions("in") == {("s", "shard-1"): "43"}
    store.close()
