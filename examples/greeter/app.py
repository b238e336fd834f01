"""The greeter's function server: ``python examples/greeter/app.py [--port 8000]``.

Serves ``POST /statefun`` for every function in ``functions.py``; ``module.yaml`` points there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))

from functions import functions

try:
    import statefun_aiohttp
except ImportError:  # statefun-aiohttp not installed: the same thing by hand
    statefun_aiohttp = None  # type: ignore[assignment]


def make_app() -> web.Application:
    app = web.Application(client_max_size=32 * 1024 * 1024)  # the runtime's largest batch
    if statefun_aiohttp is not None:
        statefun_aiohttp.setup(app, functions, path="/statefun")
        return app

    from statefun_core import CONTENT_TYPE, RequestReplyHandler, error_response

    handler = RequestReplyHandler(functions)

    async def statefun(request: web.Request) -> web.Response:
        try:
            reply = await handler.handle_async(await request.read(), headers=request.headers)
        except Exception as error:
            status, text = error_response(error)
            return web.Response(status=status, text=text)
        return web.Response(body=reply, content_type=CONTENT_TYPE)

    app.router.add_post("/statefun", statefun)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    web.run_app(make_app(), host=args.host, port=args.port)
