"""The user guide's greeter served by aiohttp at http://127.0.0.1:$PORT/statefun (default 8000).

    pip install -e . -e integrations/aiohttp   # from the repository root
    PORT=8000 python examples/aiohttp/app.py

Point a StateFun endpoint (``urlPathTemplate: http://127.0.0.1:8000/statefun``) at it.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import statefun_aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # examples/, for the functions
from greeter_functions import functions


def make_app() -> web.Application:
    app = web.Application(client_max_size=32 * 1024 * 1024)  # the runtime's largest batch
    statefun_aiohttp.setup(app, functions)
    return app


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    web.run_app(make_app(), host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
