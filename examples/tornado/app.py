"""The user guide's greeter served by Tornado at http://127.0.0.1:$PORT/statefun (default 8000).

    pip install -e . -e integrations/tornado   # from the repository root
    PORT=8000 python examples/tornado/app.py

Point a StateFun endpoint (``urlPathTemplate: http://127.0.0.1:8000/statefun``) at it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

import statefun_tornado

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # examples/, for the functions
from greeter_functions import functions


async def main() -> None:
    port = int(os.environ.get("PORT", "8000"))
    statefun_tornado.make_app(functions).listen(port, address="127.0.0.1")
    logging.info("serving the greeter at http://127.0.0.1:%d/statefun", port)
    await asyncio.Event().wait()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    asyncio.run(main())
