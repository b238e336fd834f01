"""The web page shows stuck addresses and acts on them, in a real headless Chromium driven over
the DevTools protocol: its buttons are clicked as a person would, against a real runtime."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from aiohttp import web
from statefun_local import LocalRuntime, make_app, make_value
from statefun_local.stuck import DEFAULT_EGRESS

from statefun_core import DeadLetterRecord
from statefun_core.engine import Address
from statefun_core.testing.endpoint import free_port

from .browser import CHROMIUM, chromium
from .conftest import run, serving
from .test_server_and_cli import serve_runtime
from .test_stuck import FRAGILE, POISON, fragile_functions
from .test_web_page import serve_page

ROWS = """[...document.querySelectorAll('#stuck tr')].map(r =>
             [...r.cells].map(c => c.textContent))"""
AUDIT = """[...document.querySelectorAll('#audit tr')].map(r =>
             [...r.cells].map(c => c.textContent))"""


def click(address: str, action: str) -> str:
    """Click the button for ``action`` of ``address``; a skip's or dead-letter's, then the
    confirming button of the dialog it opens."""
    confirm = "" if action == "retry" else "document.getElementById('confirm-yes').click();"
    return f"""[...document.querySelectorAll('#stuck tr')]
        .find(r => r.cells[0].textContent === {json.dumps(address)})
        .querySelector('.stuck-{action}').click(); {confirm} true"""


def told(outcome: str) -> str:
    """Whether the page shows ``outcome`` as what came of the last action on a stuck address."""
    return f"document.getElementById('stuck-problem').textContent === {json.dumps(outcome)}"


async def until_waiting(runtime: LocalRuntime, *targets: Address) -> None:
    """Until the runtime waits to retry each target (with a call in progress, an action would
    only be pending)."""
    while not set(targets) <= set(runtime._waiting):
        await asyncio.sleep(0.02)


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (Debian's package)")
def test_the_page_shows_stuck_addresses_and_acts_on_them(tmp_path: Path) -> None:
    x, y, z = (Address(FRAGILE, id) for id in ("x", "y", "z"))

    async def scenario() -> None:
        async with serving(fragile_functions(), tmp_path / "db.sqlite", call="300ms",
                           failure_pause=30) as (_, runtime):  # fmt: skip
            runner = web.AppRunner(make_app(runtime))
            await runner.setup()
            port = free_port()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            try:
                for target in (x, y, z):
                    await runtime.send(target, make_value("string", f"{POISON}-{target.id}"))
                await runtime.send(y, make_value("string", "fine"))
                await until_waiting(runtime, x, y, z)
                async with chromium(tmp_path / "profile") as page:
                    await page.goto(f"http://127.0.0.1:{port}/")
                    await page.wait_for("document.querySelectorAll('#stuck tr').length === 3")
                    assert (
                        await page.evaluate("document.getElementById('stuck-box').hidden") is False
                    )
                    rows = {row[0]: row for row in await page.evaluate(ROWS)}
                    assert set(rows) == {str(x), str(y), str(z)}
                    _, head, attempts, error, next_retry, buttons = rows[str(x)]
                    assert head.startswith("#") and "io.statefun.types/string" in head
                    assert attempts == "1"
                    assert "failed after" in error
                    assert next_retry.startswith("20")
                    assert buttons == "Retry nowSkipDead-letter"

                    # each action's outcome, not a row gone: the page's own poll can redraw
                    # the rows before the action's reply is shown
                    await page.evaluate(click(str(x), "dead-letter"))
                    await page.wait_for(told(f"{x}: dead-lettered"))
                    await page.wait_for("document.querySelectorAll('#stuck tr').length === 2")
                    await page.evaluate(click(str(y), "skip"))
                    await page.wait_for(told(f"{y}: skipped"))
                    await page.wait_for("document.querySelectorAll('#stuck tr').length === 1")
                    await page.evaluate(click(str(z), "retry"))
                    await page.wait_for(told(f"{z}: retrying"))  # no problem
                    await page.wait_for("document.querySelectorAll('#audit tr').length === 3")
                    audit = await page.evaluate(AUDIT)
                    assert [(row[1], row[2], row[4]) for row in audit] == [
                        ("retry", str(z), "page"),
                        ("skip", str(y), "page"),
                        ("dead-letter", str(x), "page"),
                    ]
                    screenshot = await page.command("Page.captureScreenshot")
                    assert len(screenshot["data"]) > 10_000

                while runtime.inspect(y)["state"].get("count") is None:
                    await asyncio.sleep(0.02)
                assert runtime.inspect(y)["state"]["count"]["value"] == 1  # after the skip
                (dead,) = runtime.egress_records()
                assert dead["egress"] == DEFAULT_EGRESS
                record = DeadLetterRecord.from_json(json.dumps(dead["record"]["json"]).encode())
                assert (record.function_type, record.function_id) == (FRAGILE, "x")
            finally:
                await runner.cleanup()

    run(scenario())


FRAMING_PAGE = """<!doctype html><title>another site</title>
<iframe src="{runtime}/" width="1200" height="800" onload="window.framed = true"></iframe>"""


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (Debian's package)")
def test_another_site_can_not_show_the_page_in_a_frame(tmp_path: Path) -> None:
    """Framed (clickjacking), the page's Dead-letter button would be under a click the user
    means for the other site's page: the browser shows an error in the frame instead."""
    x = Address(FRAGILE, "x")

    async def scenario() -> None:
        async with serving(fragile_functions(), tmp_path / "db.sqlite", call="300ms",
                           failure_pause=30) as (_, runtime):  # fmt: skip
            runner, url = await serve_runtime(runtime)
            attacker_runner, attacker_url = await serve_page(FRAMING_PAGE.format(runtime=url))
            try:
                await runtime.send(x, make_value("string", f"{POISON}-x"))
                await until_waiting(runtime, x)
                async with chromium(tmp_path / "profile") as page:
                    await page.goto(f"{attacker_url}/")
                    await page.wait_for("window.framed")
                    tree = await page.command("Page.getFrameTree")
                    [frame] = [child["frame"] for child in tree["frameTree"]["childFrames"]]
                    world = await page.command("Page.createIsolatedWorld", frameId=frame["id"])
                    shown = await page.command(
                        "Runtime.evaluate", expression="document.title", returnByValue=True,
                        contextId=world["executionContextId"])  # fmt: skip
                    assert shown["result"]["value"] != "statefun-local"
                    assert frame.get("unreachableUrl") == f"{url}/"
                assert [entry["address"] for entry in runtime.stuck()] == [str(x)]
            finally:
                await attacker_runner.cleanup()
                await runner.cleanup()

    run(scenario())


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (Debian's package)")
def test_the_page_shows_and_acts_on_an_address_whose_id_is_dot_or_dot_dot(tmp_path: Path) -> None:
    """A browser removes a path segment '.' or '..' (or '%2e'): the page asks for such an id's
    state, and acts on it, with the id as ?id=, which the runtime takes too."""
    dot, dot_dot = Address(FRAGILE, "."), Address(FRAGILE, "..")

    def choose(id_: str) -> str:
        return (
            f"[...document.querySelectorAll('#browse-ids a')]"
            f".find(a => a.innerText === {json.dumps(id_)}).click() || true"
        )

    async def scenario() -> None:
        async with serving(fragile_functions(), tmp_path / "db.sqlite", call="300ms",
                           failure_pause=30) as (_, runtime):  # fmt: skip
            runner, url = await serve_runtime(runtime)
            try:
                for target in (dot, dot_dot):
                    await runtime.send(target, make_value("string", "fine"))
                await runtime.wait_until_idle()
                await runtime.send(dot_dot, make_value("string", f"{POISON}-dot-dot"))
                await until_waiting(runtime, dot_dot)
                async with chromium(tmp_path / "profile") as page:
                    await page.goto(f"{url}/#function={FRAGILE}")
                    await page.wait_for("document.getElementById('browse-ids').innerText")
                    for target, in_flight in ((dot, 0), (dot_dot, 1)):
                        await page.evaluate(choose(target.id))
                        # read at once: a redraw in between could be another address's (an
                        # earlier poll's reply, arriving late)
                        state, summary = await page.wait_for(
                            "document.getElementById('browse-title').innerText"
                            f".startsWith({json.dumps(f'{target} · ')}) && "
                            "[[...document.getElementById('state').rows]"
                            ".map(r => [...r.cells].map(c => c.innerText)),"
                            " document.getElementById('messages-summary').innerText]"
                        )
                        assert state == [["count", "1", "io.statefun.types/int", "", "EditDelete"]]
                        assert summary == f"{in_flight} in flight · 0 queued · 0 delayed"
                        await page.goto(f"{url}/#function={FRAGILE}")
                        await page.wait_for("document.getElementById('browse-ids').innerText")

                    # which of two addresses is meant is not known: neither is shown
                    await page.goto(f"{url}/#address={dot}&address={dot_dot}")
                    await page.wait_for("document.getElementById('browse-title').innerText"
                                        ".startsWith('address is given 2 times')")  # fmt: skip
                    assert await page.evaluate("document.getElementById('browse-address').hidden")

                    await page.wait_for("document.querySelectorAll('#stuck tr').length === 1")
                    await page.evaluate(click(str(dot_dot), "skip"))
                    await page.wait_for(told(f"{dot_dot}: skipped"))
                    await page.wait_for("document.querySelectorAll('#audit tr').length === 1")
                    [entry] = await page.evaluate(AUDIT)
                    assert (entry[1], entry[2], entry[4]) == ("skip", str(dot_dot), "page")
                assert runtime.stuck() == []
                assert runtime.inspect(dot_dot)["in_flight"] == []
            finally:
                await runner.cleanup()

    run(scenario())
