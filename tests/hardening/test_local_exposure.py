"""What the local runtime exposes: by default it listens on the loopback interface only."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import aiohttp
import psutil

from .smoke import FaultyFunctionServer, RuntimeProcess, module_yaml


def test_the_runtime_listens_on_loopback_only_by_default(tmp_path: Path) -> None:
    async def scenario() -> list[str]:
        async with FaultyFunctionServer(random.Random(0), failure_rate=0) as server:
            module = tmp_path / "module.yaml"
            module.write_text(module_yaml(server.url))
            runtime = RuntimeProcess(module, tmp_path / "runtime.db")  # no --host given
            async with aiohttp.ClientSession() as session, runtime:
                await runtime.start(session)
                assert runtime.process is not None
                listening = [
                    connection.laddr.ip
                    for connection in psutil.Process(runtime.process.pid).net_connections()
                    if connection.status == psutil.CONN_LISTEN
                ]
        return listening

    listening = asyncio.run(scenario())
    assert listening and set(listening) == {"127.0.0.1"}, listening
