"""The web page shows stuck addresses and acts on them, in a real headless Chromium driven over
the DevTools protocol: its buttons are clicked as a person would, against a real runtime."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from statefun_local import LocalRuntime, make_app, make_value
from statefun_local.stuck import DEFAULT_EGRESS

from statefun_core import DeadLetterRecord
from statefun_core.engine import Address
from statefun_core.testing.endpoint import free_port

from .conftest import run, serving
from .test_stuck import FRAGILE, POISON, fragile_functions

CHROMIUM = shutil.which("chromium")


class Page:
    """One browser tab, spoken to over the DevTools protocol."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> Any:
        id = next(self.ids)
        await self.ws.send_json({"id": id, "method": method, "params": params})
        async for message in self.ws:
            data = json.loads(message.data)
            if data.get("id") == id:
                assert "error" not in data, data
                return data["result"]
        raise AssertionError("the browser went away")

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression,
                                 returnByValue=True, awaitPromise=True)  # fmt: skip
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    async def until(self, expression: str, timeout: float = 30) -> Any:
        for _ in range(int(timeout / 0.05)):
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(0.05)
        raise AssertionError(f"never true in the page: {expression}")


@contextlib.asynccontextmanager
async def chromium(url: str) -> AsyncIterator[Page]:
    assert CHROMIUM is not None
    port = free_port()
    with tempfile.TemporaryDirectory() as profile, tempfile.TemporaryFile() as log:
        process = await asyncio.create_subprocess_exec(
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", f"--remote-debugging-port={port}",
            "--remote-allow-origins=*", url, stdout=log, stderr=log,
        )  # fmt: skip
        try:
            async with aiohttp.ClientSession() as session:
                target = None
                for _ in range(600):
                    with contextlib.suppress(aiohttp.ClientError):
                        async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
                            pages = [t for t in await response.json() if t["type"] == "page"]
                            if pages:
                                target = pages[0]
                                break
                    await asyncio.sleep(0.05)
                assert target is not None, "Chromium did not open the page"
                async with session.ws_connect(target["webSocketDebuggerUrl"],
                                              max_msg_size=0) as ws:  # fmt: skip
                    yield Page(ws)
        except BaseException:
            log.seek(0)
            print(f"--- Chromium's log ---\n{log.read().decode(errors='replace')}")
            raise
        finally:
            process.terminate()
            await process.wait()


ROWS = """[...document.querySelectorAll('#stuck tr')].map(r =>
             [...r.cells].map(c => c.textContent))"""
AUDIT = """[...document.querySelectorAll('#audit tr')].map(r =>
             [...r.cells].map(c => c.textContent))"""


def click(address: str, action: str) -> str:
    return f"""[...document.querySelectorAll('#stuck tr')]
        .find(r => r.cells[0].textContent === {json.dumps(address)})
        .querySelector('.stuck-{action}').click() || true"""


async def until_waiting(runtime: LocalRuntime, *targets: Address) -> None:
    """Until the runtime waits to retry each target (a call in progress can not be acted on)."""
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
                async with chromium(f"http://127.0.0.1:{port}/") as page:
                    await page.until("document.querySelectorAll('#stuck tr').length === 3")
                    assert await page.evaluate("document.getElementById('stuck-box').hidden") \
                        is False
                    rows = {row[0]: row for row in await page.evaluate(ROWS)}
                    assert set(rows) == {str(x), str(y), str(z)}
                    _, head, attempts, error, next_retry, buttons = rows[str(x)]
                    assert head.startswith("#") and "io.statefun.types/string" in head
                    assert attempts == "1"
                    assert "failed after" in error
                    assert next_retry.startswith("20")
                    assert buttons == "Retry nowSkipDead-letter"

                    await page.evaluate(click(str(x), "dead-letter"))
                    await page.until("document.querySelectorAll('#stuck tr').length === 2")
                    await page.evaluate(click(str(y), "skip"))
                    await page.until("document.querySelectorAll('#stuck tr').length === 1")
                    await page.evaluate(click(str(z), "retry"))
                    await page.until("document.querySelectorAll('#audit tr').length === 3")
                    audit = await page.evaluate(AUDIT)
                    assert [(row[1], row[2], row[4]) for row in audit] == [
                        ("retry", str(z), "page"),
                        ("skip", str(y), "page"),
                        ("dead-letter", str(x), "page"),
                    ]
                    assert await page.evaluate("document.getElementById('stuck-problem')"
                                               ".textContent") == ""  # fmt: skip
                    screenshot = await page.call("Page.captureScreenshot")
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
