"""One Tornado server of the HTTP benchmark: ``python tornado_server.py KIND PORT``.

KIND ``statefun`` serves the user guide's greeter through statefun_tornado; ``bare`` is the same
framework reading the body and answering fixed bytes; ``floor`` answers with the core
benchmark's hand-written protobuf greeter (``benchmarks/core/floor.py``), no SDK at all;
``handler`` is a plain handler awaiting ``handle_async``, to tell the core's cost from the
integration's.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Awaitable, Callable

import statefun_tornado
from tornado.web import Application, RequestHandler

from statefun_core import CONTENT_TYPE, RequestReplyHandler, make_plugin_manager

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "examples"), str(ROOT / "benchmarks")]
from core.floor import Floor  # noqa: E402
from greeter_functions import functions  # noqa: E402


class BareHandler(RequestHandler):
    def initialize(self, reply: bytes) -> None:
        self.reply = reply

    def post(self) -> None:
        self.request.body  # noqa: B018 - read, as an endpoint would
        self.set_header("Content-Type", CONTENT_TYPE)
        self.finish(self.reply)


class AnsweringHandler(RequestHandler):
    """A plain handler answering with ``await answer(body)``: the floor's or the core's."""

    def initialize(self, answer: Callable[[bytes], Awaitable[bytes]]) -> None:
        self.answer = answer

    async def post(self) -> None:
        reply = await self.answer(self.request.body)
        self.set_header("Content-Type", CONTENT_TYPE)
        self.finish(reply)


def make_app(kind: str, fixed_reply: bytes) -> Application:
    if kind == "statefun":
        plugins = make_plugin_manager(load_entrypoints=False)
        return statefun_tornado.make_app(RequestReplyHandler(functions, plugins=plugins))
    if kind == "floor":
        floor = Floor(ROOT / "statefun_core" / "protocol" / "statefun.desc")
        return Application([("/statefun", AnsweringHandler, {"answer": floor.handle_async})])
    if kind == "handler":
        handler = RequestReplyHandler(
            functions, plugins=make_plugin_manager(load_entrypoints=False)
        )
        return Application([("/statefun", AnsweringHandler, {"answer": handler.handle_async})])
    return Application([("/statefun", BareHandler, {"reply": fixed_reply})])


async def main(kind: str, port: int, fixed_reply: bytes) -> None:
    make_app(kind, fixed_reply).listen(port, address="127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.stdin.buffer.read()))
