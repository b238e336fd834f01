"""One aiohttp server for the HTTP benchmark: ``python aiohttp_server.py {statefun|bare} PORT``.

``statefun`` serves the user guide's greeter through statefun_aiohttp; ``bare`` is the floor:
the same framework reading the body and answering fixed bytes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
import statefun_aiohttp
from greeter_functions import functions

from statefun_core import CONTENT_TYPE, RequestReplyHandler, make_plugin_manager


def make_app(kind: str, fixed_reply: bytes) -> web.Application:
    app = web.Application()
    if kind == "statefun":
        plugins = make_plugin_manager(load_entrypoints=False)
        statefun_aiohttp.setup(app, RequestReplyHandler(functions, plugins=plugins))
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
