"""The app the server tests run: ``python -m tests.server_app PORT``, one process, one loop."""

import sys

import statefun_aiohttp
from aiohttp import web

from statefun_core.testing.endpoint import make_functions

LIMIT = 64 * 1024

if __name__ == "__main__":
    app = web.Application(client_max_size=LIMIT)
    statefun_aiohttp.setup(app, make_functions(interleave=True))  # POST /statefun
    # POST /own, routed by hand
    app.router.add_post(
        "/own", statefun_aiohttp.handle_request, expect_handler=statefun_aiohttp.expect_continue
    )
    # POST /mounted/, with a larger client_max_size of its own than the parent's
    mounted = statefun_aiohttp.create_app(make_functions(), client_max_size=4 * LIMIT)
    app.add_subapp("/mounted/", mounted)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
