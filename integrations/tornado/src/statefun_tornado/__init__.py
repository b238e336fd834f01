"""Serve StateFun remote functions from a Tornado application.

Add the routes to your application::

    Application([*statefun_tornado.make_routes(functions), ...])      # POST /statefun

or write the rule yourself with a ready handler::

    (r"/statefun", StatefunHandler, {"handler": RequestReplyHandler(functions)})
"""

from __future__ import annotations

from statefun_core.errors import IntegrationNotAvailableError

try:
    import tornado.web  # noqa: F401
except ImportError as error:  # pragma: no cover - tornado is a dependency
    raise IntegrationNotAvailableError(
        "statefun_tornado needs tornado: pip install statefun-tornado"
    ) from error

from .handlers import EndpointHandler, StatefunHandler
from .routes import make_app, make_routes

__version__ = "0.1.0"

__all__ = ["EndpointHandler", "StatefunHandler", "make_app", "make_routes"]
