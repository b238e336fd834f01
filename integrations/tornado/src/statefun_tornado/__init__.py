"""Serve StateFun remote functions from a Tornado application.

Add the routes to your application::

    Application([*statefun_tornado.make_routes(functions), ...])      # POST /statefun

or write the rule yourself with a ready handler::

    (r"/statefun", StatefunHandler, {"handler": RequestReplyHandler(functions)})
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from statefun_core.http import integration_exports

if TYPE_CHECKING:
    from .handlers import EndpointHandler, StatefunHandler
    from .routes import make_app, make_routes

__all__ = ["EndpointHandler", "StatefunHandler", "make_app", "make_routes"]

# hidden from type checkers, which read the imports above: a module __getattr__ would make
# any name, a misspelt one too, type-check as Any
if not TYPE_CHECKING:
    __getattr__ = integration_exports(
        __name__,
        {
            "EndpointHandler": ".handlers",
            "StatefunHandler": ".handlers",
            "make_app": ".routes",
            "make_routes": ".routes",
        },
        framework="tornado",
        install="statefun-tornado",
    )

__version__ = "0.1.0"
