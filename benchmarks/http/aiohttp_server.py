"""One aiohttp server of the HTTP benchmark: ``python aiohttp_server.py KIND PORT``.

KIND ``statefun`` serves the user guide's greeter through statefun_aiohttp; ``bare`` is the same
framework reading the body and answering fixed bytes; ``floor`` answers with the core
benchmark's hand-written protobuf greeter (``benchmarks/core/floor.py``), no SDK at all;
``handler`` is a plain view awaiting ``handle_async``, to tell the core's cost from the
integration's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import statefun_aiohttp
from aiohttp import web

from statefun_core import CONTENT_TYPE, RequestReplyHandler, make_plugin_manager

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "examples"), str(ROOT / "benchmarks")]
from core.floor import Floor  # noqa: E402
from greeter_functions import functions  # noqa: E402


def make_app(kind: str, fixed_reply: bytes) -> web.Application:
    app = web.Application()
    if kind == "statefun":
        plugins = make_plugin_manager(load_entrypoints=False)
        statefun_aiohttp.setup(app, RequestReplyHandler(functions, plugins=plugins))
    elif kind == "floor":
        floor = Floor(ROOT / "statefun_core" / "protocol" / "statefun.desc")

        async def hand_written(request: web.Request) -> web.Response:
            reply = await floor.handle_async(await request.read())
            return web.Response(body=reply, content_type=CONTENT_TYPE)

        app.router.add_post("/statefun", hand_written)
    elif kind == "handler":
        handler = RequestReplyHandler(
            functions, plugins=make_plugin_manager(load_entrypoints=False)
        )

        async def by_hand(request: web.Request) -> web.Response:
            reply = await handler.handle_async(await request.read())
            return web.Response(body=reply, content_type=CONTENT_TYPE)

        app.router.add_post("/statefun", by_hand)
    else:

        async def bare(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(body=fixed_reply, content_type=CONTENT_TYPE)

        app.router.add_post("/statefun", bare)
    return app


if __name__ == "__main__":
    kind, port = sys.argv[1], int(sys.argv[2])
    fixed_reply = sys.stdin.buffer.read()
    web.run_app(
        make_app(kind, fixed_reply), host="127.0.0.1", port=port, access_log=None, print=None
    )
