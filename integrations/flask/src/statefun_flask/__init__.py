"""Serve StateFun remote functions from a Flask application.

As an extension, configured through ``app.config`` (``STATEFUN_*`` keys)::

    statefun = Statefun(app, functions)        # POST /statefun, plugin endpoints (GET /metrics)
    # or: statefun = Statefun(); statefun.init_app(app)

or as a blueprint::

    app.register_blueprint(make_blueprint(functions, url_prefix="/statefun"))
"""

from __future__ import annotations

from statefun_core.errors import IntegrationNotAvailableError

try:
    import flask  # noqa: F401
except ImportError as error:  # pragma: no cover - flask is a dependency
    raise IntegrationNotAvailableError(
        "statefun_flask needs Flask: pip install statefun-flask"
    ) from error

from .blueprint import endpoint_view, make_blueprint
from .extension import Statefun, StatefunState

__version__ = "0.1.0"

__all__ = ["Statefun", "StatefunState", "endpoint_view", "make_blueprint"]
