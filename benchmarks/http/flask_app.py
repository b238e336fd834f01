"""The Flask apps of the HTTP benchmark, for gunicorn: ``flask_app:make_app('statefun')``.

``statefun`` serves the user guide's greeter through statefun_flask; ``bare`` is the floor: a
plain Flask view reading the body and answering fixed bytes (hex in ``BENCH_FIXED_REPLY``);
``handler`` is a plain view calling ``handle_sync``, to tell the core's cost from ours;
``floor`` is a plain view answering with the core benchmark's hand-written protobuf greeter
(``benchmarks/core/floor.py``), no SDK at all: the most any SDK could reach.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from flask import Flask, Response, request
from statefun_flask import Statefun

from statefun_core import CONTENT_TYPE, RequestReplyHandler

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "examples"), str(ROOT / "benchmarks")]
from core.floor import Floor  # noqa: E402
from greeter_functions import functions  # noqa: E402


def make_app(kind: str) -> Flask:
    app = Flask(__name__)
    if kind == "statefun":
        Statefun(app, functions)
        return app
    if kind == "handler":
        handler = RequestReplyHandler(functions)

        @app.post("/statefun")
        def by_hand() -> Response:
            return Response(handler.handle_sync(request.get_data()), content_type=CONTENT_TYPE)

        return app
    if kind == "floor":
        floor = Floor(ROOT / "statefun_core" / "protocol" / "statefun.desc")

        @app.post("/statefun")
        def hand_written() -> Response:
            return Response(floor.handle_sync(request.get_data()), content_type=CONTENT_TYPE)

        return app
    fixed_reply = bytes.fromhex(os.environ["BENCH_FIXED_REPLY"])

    @app.post("/statefun")
    def bare() -> Response:
        request.get_data()
        return Response(fixed_reply, content_type=CONTENT_TYPE)

    return app
