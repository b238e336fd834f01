"""The ASGI applications of the ASGI benchmark, chosen by ``BENCH_KIND``: ``uvicorn asgi_app:app``.

``statefun`` is ``statefun_core.asgi.StatefunASGI`` serving the user guide's greeter;
``handler`` is the floor for it: a hand-written ASGI endpoint that reads the body and awaits
``handle_async``, nothing else (no routing, no limit, no hooks for refused requests); ``bare``
reads the body and answers fixed bytes (``BENCH_FIXED_REPLY``, hex); ``floor`` answers with the
core benchmark's hand-written protobuf greeter, no SDK at all. ``both`` does the floor's work,
drops its reply and answers with ``handle_async``'s: ``both - floor`` prices the SDK's work and
``both - handler`` the floor's, each in the same server (asgi_protocol.py ``--kinds``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable

from statefun_core import CONTENT_TYPE, RequestReplyHandler, make_plugin_manager
from statefun_core.asgi import StatefunASGI

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "examples"), str(ROOT / "benchmarks")]
from core.floor import Floor  # noqa: E402
from greeter_functions import functions  # noqa: E402


def hand_written(answer: Callable[[bytes], Any]) -> Any:
    """An ASGI endpoint that reads the body and sends ``await answer(body)``."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        reply = await answer(b"".join(chunks))
        await send({
            "type": "http.response.start", "status": 200,
            "headers": [(b"content-type", CONTENT_TYPE.encode()),
                        (b"content-length", str(len(reply)).encode())],
        })  # fmt: skip
        await send({"type": "http.response.body", "body": reply})

    return app


def make_app(kind: str) -> Any:
    handler = RequestReplyHandler(functions, plugins=make_plugin_manager(load_entrypoints=False))
    if kind == "statefun":
        return StatefunASGI(handler, endpoints=False)
    if kind == "handler":
        return hand_written(handler.handle_async)
    if kind == "floor":
        return hand_written(
            Floor(ROOT / "statefun_core" / "protocol" / "statefun.desc").handle_async
        )
    if kind == "both":
        floor = Floor(ROOT / "statefun_core" / "protocol" / "statefun.desc")

        async def both(body: bytes) -> bytes:
            floor.handle_sync(body)
            return await handler.handle_async(body)

        return hand_written(both)
    fixed_reply = bytes.fromhex(os.environ["BENCH_FIXED_REPLY"])

    async def fixed(body: bytes) -> bytes:
        return fixed_reply

    return hand_written(fixed)


app = make_app(os.environ.get("BENCH_KIND", "statefun"))
