"""The user guide's greeter served by FastAPI at http://127.0.0.1:$PORT/statefun/ (default 8000).

    pip install -e . fastapi uvicorn   # from the repository root
    uvicorn --app-dir examples/fastapi --port ${PORT:-8000} app:app

Point a StateFun endpoint at it, with the trailing slash of a mount:
``urlPathTemplate: http://127.0.0.1:8000/statefun/``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI

from statefun_core import RequestReplyHandler
from statefun_core.asgi import StatefunASGI

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # examples/, for the functions
from greeter_functions import functions

statefun = StatefunASGI(
    functions
)  # POST /statefun/; GET /statefun/metrics with statefun-prometheus
app = FastAPI(title="greeter")
app.mount("/statefun", statefun)


def statefun_handler() -> RequestReplyHandler:
    """The handler, as a dependency: a test replaces it with ``app.dependency_overrides``."""
    return statefun.handler


@app.get("/functions")
def bound_functions(
    handler: Annotated[RequestReplyHandler, Depends(statefun_handler)],
) -> list[str]:
    """The typenames this server serves (the rest of your API lives beside the functions)."""
    return sorted(function.typename for function in handler.functions)


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(
        app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")), log_level="warning"
    )
