"""A real headless Chromium, driven over the DevTools protocol (a WebSocket) with aiohttp."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Optional

import aiohttp

CHROMIUM = shutil.which("chromium")


class Page:
    """One tab: navigate, evaluate JavaScript, wait for a condition."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self._socket = socket
        self._ids = itertools.count(1)

    async def command(self, method: str, **params: Any) -> Any:
        number = next(self._ids)
        await self._socket.send_json({"id": number, "method": method, "params": params})
        while True:
            reply = json.loads((await self._socket.receive()).data)
            if reply.get("id") == number:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    async def goto(self, url: str) -> None:
        await self.command("Page.navigate", url=url)

    async def evaluate(self, expression: str) -> Any:
        """The value of ``expression`` (awaited if it is a promise), as JSON."""
        result = await self.command(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 30.0) -> Any:
        """The first truthy value of ``expression``, evaluated until ``timeout`` s pass."""
        deadline = time.monotonic() + timeout
        value: Any = None
        while time.monotonic() < deadline:
            with contextlib.suppress(RuntimeError):  # the page may be loading
                value = await self.evaluate(expression)
                if value:
                    return value
            await asyncio.sleep(0.1)
        raise AssertionError(f"still {value!r} after {timeout} s: {expression}")

    async def text(self, selector: str) -> str:
        return str(
            await self.evaluate(f"document.querySelector({json.dumps(selector)})?.innerText ?? ''")
        )

    async def rows(self, tbody: str) -> list[list[str]]:
        """The cells' text of each row of the table body with the id ``tbody``."""
        return list(
            await self.evaluate(
                f"[...document.getElementById({json.dumps(tbody)}).rows]"
                ".map(r => [...r.cells].map(c => c.innerText))"
            )
        )


@contextlib.asynccontextmanager
async def chromium(profile: Path, extra: tuple[str, ...] = ()) -> AsyncIterator[Page]:
    """Headless Chromium with an empty profile in ``profile``; its log is printed (for pytest to
    show) when the block fails, and the process is killed by its PID."""
    assert CHROMIUM is not None, "chromium is not installed (.ci/run installs Debian's)"
    profile.mkdir(parents=True, exist_ok=True)
    log_path = profile.parent / "chromium.log"
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", f"--user-data-dir={profile}", "--remote-debugging-port=0",
               *extra, "about:blank"]  # fmt: skip
    # Killed, Chromium leaves its singleton directory (and socket) in $TMPDIR: a short one of
    # its own, removed after (a socket's path under pytest's tmp_path can be over 107 bytes).
    tmpdir = tempfile.mkdtemp(prefix="chromium-")
    env = {**os.environ, "TMPDIR": tmpdir}
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        port = await _devtools_port(profile / "DevToolsActivePort", process)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = await response.json()
            [target] = [t for t in targets if t["type"] == "page"]
            async with session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                yield Page(ws)
    except BaseException:
        print(f"--- chromium log ({log_path})", file=sys.stderr)
        print(log_path.read_text(errors="replace")[-5000:], file=sys.stderr)
        raise
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
        shutil.rmtree(tmpdir, ignore_errors=True)


async def _devtools_port(path: Path, process: subprocess.Popen[bytes]) -> int:
    """The port Chromium writes to ``DevToolsActivePort`` once it listens."""
    deadline = time.monotonic() + 60
    text: Optional[str] = None
    while time.monotonic() < deadline and process.poll() is None:
        if path.exists():
            text = path.read_text()
            if "\n" in text:
                return int(text.split("\n", 1)[0])
        await asyncio.sleep(0.1)
    raise AssertionError(
        f"Chromium did not start its DevTools server ({text!r}, exit code {process.poll()})"
    )
