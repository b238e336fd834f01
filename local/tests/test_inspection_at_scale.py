"""Inspecting a big application: what the CLI, the API and the page read of an address, a
function type or the runtime is a page of it, found through an index, not a read of every row."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from statefun_local import LocalRuntime, make_value, stuck
from statefun_local.cli import main
from statefun_local.inspection import address_ids, address_view
from statefun_local.store import SqliteStore

from statefun_core import Context, Message, StatefulFunctions, message_builder
from statefun_core.engine import Address, Envelope, Timer, TypedValue

from .browser import CHROMIUM, chromium
from .conftest import run, serving
from .test_server_and_cli import serve_runtime

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
        timers = [plan for plan in plans if "timers" in plan]
        assert timers and all(
            plan.startswith("SEARCH timers USING") and "INDEX timers_by_target (" in plan
            for plan in timers
        ), timers
        assert [t["seq"] for t in address_view(store, BIG, 0)["timers"]] == [201]


def spammer_functions() -> StatefulFunctions:
    """``com.example/fn``: ``delay:N`` sends itself N delayed messages, due in an hour."""
    functions = StatefulFunctions()

    @functions.bind("com.example/fn")
    def spammer(context: Context, message: Message) -> None:
        text = message.as_string()
        if text.startswith("delay:"):
            for i in range(int(text.split(":")[1])):
                context.send_after(
                    timedelta(hours=1),
                    message_builder("com.example/fn", context.address.id, str_value=f"later {i}"),
                )

    return functions


async def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        await asyncio.sleep(0.05)


async def long_mailbox_and_many_timers(runtime: LocalRuntime, fail: list[bool]) -> None:
    """BIG gets 250 delayed messages; then its function fails: 1 message in flight, 249
    queued behind it."""
    await runtime.send(BIG, make_value("string", "delay:250"))
    await runtime.wait_until_idle()
    fail[0] = True
    await runtime.send(BIG, make_value("string", "first"))
    await until(lambda: runtime.inspect(BIG)["totals"]["in_flight"] == 1)
    for i in range(249):
        await runtime.send(BIG, make_value("string", f"m{i}"))


def test_a_look_at_an_address_shows_a_page_of_its_messages_and_counts_them_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fail = [False]

    def fault(_: int) -> web.Response | None:
        return web.Response(status=500, text="down") if fail[0] else None

    db = tmp_path / "db.sqlite"

    async def scenario() -> None:
        async with serving(spammer_functions(), db, fault=fault) as (_, runtime):
            await long_mailbox_and_many_timers(runtime, fail)
            runner, url = await serve_runtime(runtime)
            try:
                async with aiohttp.ClientSession() as session:
                    path = f"{url}/api/state/com.example/fn/big"
                    async with session.get(path) as response:
                        view = await response.json()
                    assert view["totals"] == {"in_flight": 1, "queued": 249, "timers": 250}
                    assert (len(view["in_flight"]), len(view["queued"])) == (1, 99)
                    assert len(view["timers"]) == 100
                    async with session.get(f"{path}?limit=1000") as response:
                        view = await response.json()
                    assert (len(view["queued"]), len(view["timers"])) == (249, 250)
                    async with session.get(f"{path}?limit=0") as response:
                        assert response.status == 400
                if CHROMIUM is not None:
                    async with chromium(tmp_path / "profile") as page:
                        await page.goto(f"{url}/#address=com.example%2Ffn%2Fbig")
                        await page.wait_for(
                            "document.getElementById('messages-summary').innerText === "
                            "'1 in flight · 249 queued · 250 delayed'"
                        )
                        rows = await page.rows("messages")
                        assert len(rows) == 1 + 99 + 1 + 100 + 1
                        assert rows[100] == ["… and 150 more queued"]
                        assert rows[-1] == ["… and 150 more delayed"]
                        spans = await page.evaluate(
                            "[...document.querySelectorAll('#messages tr')]"
                            ".filter(tr => tr.cells.length === 1).map(tr => tr.cells[0].colSpan)"
                        )
                        assert spans == [5, 5]  # the notes span the table's 5 columns
            finally:
                await runner.cleanup()

    run(scenario())
    assert main(["state", "com.example/fn/big", "--db", str(db)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + 1 + 3 + 1 + 99 + 1 + 100 + 1  # the address, state, 3 headings, ...
    assert "  queued: 249 message(s)" in lines
    assert "    ... and 150 more (--limit N shows more)" in lines
    assert "  timers: 250" in lines
    assert main(["state", "com.example/fn/big", "--db", str(db), "--limit", "300"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1 + 1 + 3 + 1 + 249 + 250


def test_the_status_the_page_polls_shows_a_page_of_stuck_addresses_and_counts_them_all(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with serving(spammer_functions(), tmp_path / "db.sqlite", fault=down, call="60s") as (
            _,
            runtime,
        ):
            for i in range(120):
                await runtime.send(Address("com.example/fn", f"{i:03d}"), make_value("string", ""))
            await until(lambda: runtime.status()["totals"]["stuck"] == 120)
            await until(lambda: runtime.status()["totals"]["retrying"] == 120)
            status = runtime.status()
            assert (len(status["stuck"]), len(status["retrying"])) == (100, 100)
            assert len(runtime.stuck()) == 120
            if CHROMIUM is None:
                return
            runner, url = await serve_runtime(runtime)
            try:
                async with chromium(tmp_path / "profile") as page:
                    await page.goto(f"{url}/")
                    await page.wait_for("!document.getElementById('stuck-box').hidden")
                    rows = await page.rows("stuck")
                    assert len(rows) == 101
                    assert rows[-1] == [
                        "… and 20 more (statefun-local stuck or GET /api/stuck lists them)"
                    ]
                    retrying = await page.evaluate(
                        "[...document.querySelectorAll('#retrying li')].map(li => li.innerText)"
                    )
                    assert len(retrying) == 101 and retrying[-1] == "… and 20 more"
            finally:
                await runner.cleanup()

    run(scenario())


def test_an_action_on_a_stuck_address_reads_its_row_not_every_stuck_address(
    tmp_path: Path,
) -> None:
    with contextlib.closing(SqliteStore.open(tmp_path / "db.sqlite")) as store:
        stuck.ensure_schema(store.conn)
        addresses = [Address("com.example/fn", f"{i:03d}") for i in range(50)]
        with store.transaction():
            for address in addresses:
                seq = store.mailbox_append(Envelope(address, VALUE))
                stuck.record_failure(store, address, seq, "down", 0, 1)
        plans = query_plans(store, lambda: stuck.get(store, addresses[7]))
        assert plans and not [plan for plan in plans if plan.startswith("SCAN")], plans
        entry = stuck.get(store, addresses[7])
        assert entry is not None and entry["address"] == "com.example/fn/007"
        assert stuck.get(store, Address("com.example/fn", "none")) is None


def test_the_audit_log_comes_in_pages_and_says_how_many_entries_are_not_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "db.sqlite"

    async def scenario() -> None:
        async with serving(
            spammer_functions(),
            db,
            fault=down,
            call="100ms",
            dead_letters=stuck.DeadLetterPolicy(after=1),
        ) as (_, runtime):
            for i in range(130):  # each dead-lettered after its first failed call: audited
                await runtime.send(Address("com.example/fn", f"{i:03d}"), make_value("string", ""))
            await until(lambda: runtime.status()["totals"]["audit"] == 130, timeout=120)
            assert len(runtime.status()["audit"]) == 20
            runner, url = await serve_runtime(runtime)
            try:
                async with aiohttp.ClientSession() as session:
                    async with session.get(f"{url}/api/audit") as response:
                        first = await response.json()
                    async with session.get(f"{url}/api/audit?before={first['next']}") as response:
                        second = await response.json()
                assert (len(first["audit"]), len(second["audit"]), second["next"]) == (
                    100,
                    30,
                    None,
                )
                seqs = [e["seq"] for e in first["audit"] + second["audit"]]
                assert seqs == list(range(130, 0, -1))
                if CHROMIUM is not None:
                    async with chromium(tmp_path / "profile") as page:
                        await page.goto(f"{url}/")
                        await page.wait_for("!document.getElementById('audit-box').hidden")
                        rows = await page.rows("audit")
                        assert len(rows) == 21
                        assert rows[-1] == [
                            "… and 110 more (statefun-local audit or GET /api/audit lists them)"
                        ]
            finally:
                await runner.cleanup()

    run(scenario())
    assert main(["audit", "--db", str(db), "--limit", "50"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 51
    assert lines[0] == "... 80 older entries before these (--limit N shows more)"
    assert main(["audit", "--db", str(db)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 130


def stuck_rows(store: SqliteStore, first_failed_ms: int, ids: list[str]) -> None:
    """Addresses ``com.example/fn/<id>`` stuck since ``first_failed_ms``, their head queued."""
    with store.transaction():
        for id_ in ids:
            address = Address("com.example/fn", id_)
            seq = store.mailbox_append(Envelope(address, VALUE))
            stuck.record_failure(store, address, seq, "down", first_failed_ms, first_failed_ms + 1)


def walk(store: SqliteStore, limit: int, between: Callable[[], None]) -> list[str]:
    """Every stuck address, a page of ``limit`` at a time as ``GET /api/stuck`` reads them,
    ``between()`` run after each page."""
    seen: list[str] = []
    after = None
    while True:
        page = stuck.listing(store, limit + 1, after=after)
        seen += [entry["address"] for entry in page[:limit]]
        between()
        if len(page) <= limit:
            return seen
        after = page[limit - 1]["position"]


def test_a_page_of_stuck_addresses_is_read_in_order_through_an_index_and_paging_is_stable(
    tmp_path: Path,
) -> None:
    with contextlib.closing(SqliteStore.open(tmp_path / "db.sqlite")) as store:
        stuck.ensure_schema(store.conn)
        # 300 addresses failed in the same millisecond, 200 in a later one: pages end inside
        # a millisecond, where the address orders them
        stuck_rows(store, 1_000, [f"a{i:03d}" for i in range(300)])
        stuck_rows(store, 2_000, [f"b{i:03d}" for i in range(200)])
        everyone = [e["address"] for e in stuck.listing(store)]
        assert len(everyone) == 500 and everyone[0] == "com.example/fn/a000"
        assert everyone[299:301] == ["com.example/fn/a299", "com.example/fn/b000"]

        page = stuck.listing(store, 101)
        assert page[99]["position"] == "1000/com.example/fn//a099"
        plans = query_plans(store, lambda: stuck.listing(store, 101, after=page[99]["position"]))
        plans += query_plans(store, lambda: stuck.listing(store, 101))
        # each page walks the index from its start or its position, stopping at the limit:
        # no stuck row is sorted, none before the page read
        assert not [plan for plan in plans if "TEMP B-TREE" in plan], plans
        assert [plan for plan in plans if plan.endswith(" s") or " s USING" in plan] == [
            "SEARCH s USING INDEX stuck_by_first_failure "
            "((first_failed_ms,target_type,target_id)>(?,?,?))",
            "SCAN s USING INDEX stuck_by_first_failure",
        ], plans
        # and of the other tables only the rows of the page's addresses
        assert [plan for plan in plans if plan.startswith("SCAN")] == [
            "SCAN s USING INDEX stuck_by_first_failure"
        ], plans

        # while it is walked, addresses shown already recover and others get stuck: every
        # address stuck all along is listed once, in order; those stuck meanwhile at the end
        pages = iter(range(10))

        def meanwhile() -> None:
            n = next(pages)
            with store.transaction():
                stuck.clear(store, Address("com.example/fn", f"a{n:03d}"))
            stuck_rows(store, 3_000 + n, [f"c{n}"])

        walked = walk(store, 100, meanwhile)
        assert walked == everyone + [f"com.example/fn/c{n}" for n in range(5)]


def test_the_stuck_addresses_come_in_pages_and_the_cli_says_how_many_it_leaves_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "db.sqlite"

    async def scenario() -> None:
        async with serving(spammer_functions(), db, fault=down, call="60s") as (_, runtime):
            for i in range(250):
                await runtime.send(Address("com.example/fn", f"{i:03d}"), make_value("string", ""))
            await until(lambda: runtime.status()["totals"]["stuck"] == 250)
            everyone = [entry["address"] for entry in runtime.stuck()]
            runner, url = await serve_runtime(runtime)
            try:
                async with aiohttp.ClientSession() as session:
                    pages, sizes, after = [], [], None
                    while True:
                        query = {} if after is None else {"after": after}
                        async with session.get(f"{url}/api/stuck", params=query) as response:
                            assert response.status == 200
                            body = await response.read()
                        page = json.loads(body)
                        pages.append(page)
                        sizes.append(len(body))
                        after = page["next"]
                        if after is None:
                            break
                    assert [len(page["stuck"]) for page in pages] == [100, 100, 50]
                    assert [page["next"] for page in pages] == [
                        pages[0]["stuck"][-1]["position"],
                        pages[1]["stuck"][-1]["position"],
                        None,
                    ]
                    walked = [entry["address"] for page in pages for entry in page["stuck"]]
                    assert walked == everyone and len(set(walked)) == 250
                    async with session.get(f"{url}/api/stuck?limit=1000") as response:
                        body = await response.read()
                    assert len(json.loads(body)["stuck"]) == 250 and sizes[0] < len(body) / 2
                    async with session.get(f"{url}/api/stuck?limit=250") as response:
                        assert (await response.json())["next"] is None
                    async with session.get(f"{url}/api/stuck?limit=249") as response:
                        page = await response.json()
                    assert page["next"] == page["stuck"][-1]["position"]
                    for refused in [
                        "limit=0",
                        "limit=1001",
                        "after=017",
                        "after=1/x//y&after=2/x//y",
                    ]:
                        async with session.get(f"{url}/api/stuck?{refused}") as response:
                            assert response.status == 400, refused
                            assert "Traceback" not in await response.text()
            finally:
                await runner.cleanup()

    run(scenario())
    assert main(["stuck", "--db", str(db), "--limit", "50"]) == 0
    lines = capsys.readouterr().out.splitlines()
    # that no runtime runs, then 2 lines an address (the address, its last error), then the rest
    assert len(lines) == 1 + 2 * 50 + 1
    assert lines[-1] == "... and 200 more after these (--limit N shows more)"
    assert lines[1].startswith("com.example/fn/000: ")
    assert main(["stuck", "--db", str(db)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1 + 2 * 250
    assert main(["stuck", "--db", str(db), "--json", "--limit", "10"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 10


def down(_: int) -> web.Response:
    """A function server's answer to every call: a 500, so each address gets stuck."""
    return web.Response(status=500, text="down")
