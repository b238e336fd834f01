"""Serve StateFun remote functions from a Flask application.

As an extension, configured through ``app.config`` (``STATEFUN_*`` keys)::

    statefun = Statefun(app, functions)        # POST /statefun, plugin endpoints (GET /metrics)
    # or: statefun = Statefun(); statefun.init_app(app)

or as a blueprint::

    app.register_blueprint(make_blueprint(functions, url_prefix="/statefun"))
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from statefun_core.http import integration_exports

if TYPE_CHECKING:
    from .blueprint import endpoint_view, make_blueprint, route_endpoints
    from .extension import Statefun, StatefunState

__all__ = ["Statefun", "StatefunState", "endpoint_view", "make_blueprint", "route_endpoints"]

# hidden from type checkers, which read the imports above: a module __getattr__ would make
# any name, a misspelt one too, type-check as Any
if not TYPE_CHECKING:
    __getattr__ = integration_exports(
        __name__,
        {
            "endpoint_view": ".blueprint",
            "make_blueprint": ".blueprint",
            "route_endpoints": ".blueprint",
            "Statefun": ".extension",
            "StatefunState": ".extension",
        },
        framework="flask",
        install="statefun-flask",
    )

__version__ = "0.1.0"
