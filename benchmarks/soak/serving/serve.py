"""``python serve.py aiohttp|tornado PORT``: the servers of their own, on 127.0.0.1."""

from __future__ import annotations

import asyncio
import sys

import apps


async def tornado(port: int) -> None:
    apps.tornado_app().listen(port, address="127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "aiohttp":
        from aiohttp import web

        web.run_app(apps.aiohttp_app(), host="127.0.0.1", port=port, print=None)
    else:
        asyncio.run(tornado(port))
