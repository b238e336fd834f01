"""Liveness and readiness endpoints for orchestrators, contributed through ``statefun_endpoints``.

Off by default. Turn them on with ``STATEFUN_HEALTH=1`` (any integration, no code) or by
registering ``HealthEndpoints()`` yourself::

    make_plugin_manager([HealthEndpoints(path="/healthz", show_functions=True)])

``GET <path>/live`` answers 200 while the process serves; ``GET <path>/ready`` answers 200 once
the handler is built (every state type resolved), with the number of functions served, and
their typenames only with ``show_functions=True`` (``STATEFUN_HEALTH_SHOW_FUNCTIONS=1``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Mapping

from .endpoints import Endpoint, EndpointResponse
from .markers import hookimpl

if TYPE_CHECKING:
    from ..handler import RequestReplyHandler

__all__ = ["HEALTH_ENV", "HEALTH_SHOW_FUNCTIONS_ENV", "HealthEndpoints"]

#: Set to 1 (true, yes, on) to serve the health endpoints at /health/live and /health/ready.
HEALTH_ENV = "STATEFUN_HEALTH"
#: Set to 1 to list the function typenames in the readiness answer.
HEALTH_SHOW_FUNCTIONS_ENV = "STATEFUN_HEALTH_SHOW_FUNCTIONS"

_JSON = {"Content-Type": "application/json", "Cache-Control": "no-store"}


class HealthEndpoints:
    """``GET <path>/live`` and ``GET <path>/ready``; function names only if ``show_functions``."""

    path: str

    def __init__(self, path: str = "/health", *, show_functions: bool = False) -> None:
        self.path = path.rstrip("/")
        self.show_functions = show_functions

    @hookimpl
    def statefun_endpoints(self, handler: RequestReplyHandler) -> list[Endpoint]:
        show_functions = self.show_functions

        def live(headers: Mapping[str, str]) -> EndpointResponse:
            return EndpointResponse(200, _JSON, b'{"status": "live"}')

        def readiness(headers: Mapping[str, str]) -> EndpointResponse:
            # counted now: a function bound after the handler was made is served too, and so
            # are the functions of a handler given new ones
            functions = handler.functions
            ready: dict[str, Any] = {"status": "ready", "functions": len(functions)}
            if show_functions:
                ready["typenames"] = sorted(function.typename for function in functions)
            return EndpointResponse(200, _JSON, json.dumps(ready).encode())

        return [
            Endpoint("GET", f"{self.path}/live", live),
            Endpoint("GET", f"{self.path}/ready", readiness),
        ]
