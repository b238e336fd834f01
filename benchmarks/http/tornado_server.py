"""One Tornado server for the HTTP benchmark: ``python tornado_server.py {statefun|bare} PORT``.

``statefun`` serves the user guide's greeter through statefun_tornado; ``bare`` is the floor:
the same framework reading the body and answering fixed bytes.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tornado.web import Application, RequestHandler

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
import statefun_tornado
from greeter_functions import functions

from statefun_core import CONTENT_TYPE, RequestReplyHandler, make_plugin_manager


class BareHandler(RequestHandler):
    def initialize(self, reply: bytes) -> None:
        self.reply = reply

    def post(self) -> None:
        self.request.body  # noqa: B018 - read, as an endpoint would
        self.set_header("Content-Type", CONTENT_TYPE)
        self.finish(self.reply)


def make_app(kind: str, fixed_reply: bytes) -> Application:
    if kind == "statefun":
        plugins = make_plugin_manager(load_entrypoints=False)
        return statefun_tornado.make_app(RequestReplyHandler(functions, plugins=plugins))
    return Application([("/statefun", BareHandler, {"reply": fixed_reply})])


async def main(kind: str, port: int, fixed_reply: bytes) -> None:
    make_app(kind, fixed_reply).listen(port, address="127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.stdin.buffer.read()))
