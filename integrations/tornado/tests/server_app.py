"""The app the server tests run: ``python -m tests.server_app PORT [MAX_BODY_SIZE]``, one
process, one loop."""

import asyncio
import sys

import statefun_tornado

from statefun_core.testing.endpoint import make_functions

LIMIT = 64 * 1024


async def main(port: int, limit: int) -> None:
    functions = make_functions(interleave=True)
    statefun_tornado.make_app(functions, max_body_size=limit).listen(port, address="127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else LIMIT))
