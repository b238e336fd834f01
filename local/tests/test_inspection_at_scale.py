"""Inspecting a big application: what the CLI, the API and the page read of an address, a
function type or the runtime is a page of it, found through an index, not a read of every row."""

from __future__ import annotations

import contextlib
from pathlib import Path

from statefun_local.inspection import address_ids, address_view
from statefun_local.store import SqliteStore

from statefun_core.engine import Address, Timer, TypedValue

BIG = Address("com.example/fn", "big")
OTHER = Address("com.example/fn", "other")
VALUE = TypedValue("io.statefun.types/string", b"", False)


def query_plans(store: SqliteStore, read: object) -> list[str]:
    """What SQLite does for each query ``read()`` runs: EXPLAIN QUERY PLAN of each."""
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    try:
        read()  # type: ignore[operator]
    finally:
        store.conn.set_trace_callback(None)
    return [
        detail
        for sql in statements
        if sql.lstrip().upper().startswith("SELECT")
        for *_, detail in store.conn.execute(f"EXPLAIN QUERY PLAN {sql}")
    ]


def test_an_address_s_delayed_messages_are_found_without_reading_every_other(
    tmp_path: Path,
) -> None:
    with contextlib.closing(SqliteStore.open(tmp_path / "db.sqlite")) as store:
        with store.transaction():
            for due in range(200):
                store.timer_add(Timer(due, OTHER, VALUE, OTHER))
            store.timer_add(Timer(5, BIG, VALUE, OTHER))
        plans = query_plans(store, lambda: address_view(store, BIG, 0))
        plans += query_plans(store, lambda: address_ids(store, "com.example/fn"))
        assert [plan for plan in plans if "timers" in plan] == [
            "SEARCH timers USING INDEX timers_by_target (target_type=? AND target_id=?)",
            "SEARCH timers USING COVERING INDEX timers_by_target (target_type=? AND target_id>?)",
        ]
        assert [t["seq"] for t in address_view(store, BIG, 0)["timers"]] == [201]
