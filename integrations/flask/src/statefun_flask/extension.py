"""The Flask extension: ``Statefun(app)`` or ``Statefun()`` then ``init_app(app)``."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any, Mapping, Optional, Union

from flask import Flask, current_app
from werkzeug.utils import import_string

from statefun_core import RequestReplyHandler, StatefulFunctions
from statefun_core.http import FunctionsOrHandler, as_handler

from .blueprint import already_routed, make_blueprint, route_endpoints

__all__ = ["Statefun", "StatefunState"]


@dataclass
class StatefunState:
    """What the extension keeps per application, in ``app.extensions["statefun"]``."""

    handler: RequestReplyHandler


class Statefun:
    """Serves StateFun functions from a Flask app, configured by ``STATEFUN_*`` keys.

    ``functions`` (a ``StatefulFunctions`` or a ``RequestReplyHandler``) is the default for
    ``STATEFUN_FUNCTIONS``; the app's config wins. Keys, with their defaults:

    - ``STATEFUN_FUNCTIONS``: the functions, as an object or a dotted path
      (``"proj.fns:functions"`` or ``"proj.fns.functions"``).
    - ``STATEFUN_URL_PREFIX`` = ``"/statefun"``: where the runtime POSTs.
    - ``STATEFUN_ENDPOINTS`` = ``True``: serve the endpoints the plugins contribute
      (``/metrics`` of statefun-prometheus, health) at their paths; ``False`` leaves them out.

    The request body limit is Flask's ``MAX_CONTENT_LENGTH``, or without it the handler's
    ``Limits.request_bytes`` (a larger body is answered with 413).
    """

    def __init__(
        self,
        app: Optional[Flask] = None,
        functions: Union[FunctionsOrHandler, str, None] = None,
    ) -> None:
        self.functions = functions
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        config = app.config
        config.setdefault("STATEFUN_FUNCTIONS", self.functions)
        config.setdefault("STATEFUN_URL_PREFIX", "/statefun")
        config.setdefault("STATEFUN_ENDPOINTS", True)

        check_config(config)
        if "statefun" in app.blueprints:  # Flask would say "Use 'name='", which is not ours
            raise ValueError(
                "statefun_flask: the app has a blueprint named 'statefun' already (Statefun "
                "set up on it before, or one of the app's own); for a second endpoint, "
                "register make_blueprint(functions, url_prefix=..., name=...)"
            )
        functions = config["STATEFUN_FUNCTIONS"]
        if functions is None:
            raise RuntimeError(
                "statefun_flask: no functions to serve; pass Statefun(app, functions) "
                "or set app.config['STATEFUN_FUNCTIONS']"
            )
        path = functions if isinstance(functions, str) else None
        if path is not None:
            functions = import_string(path)
        if path is not None and isinstance(functions, ModuleType):
            raise TypeError(
                f"statefun_flask: STATEFUN_FUNCTIONS: {path!r} is a module: name the "
                f"StatefulFunctions in it, such as '{path}:functions'"
            )
        if not isinstance(functions, (StatefulFunctions, RequestReplyHandler)):
            raise TypeError(
                "statefun_flask: STATEFUN_FUNCTIONS: expected a StatefulFunctions or a "
                f"RequestReplyHandler, got {type(functions).__name__}"
            )
        handler = as_handler(functions)

        if config["STATEFUN_ENDPOINTS"]:
            handler.check_endpoints_clear_of(config["STATEFUN_URL_PREFIX"] or "/")
            for endpoint in handler.endpoints:  # a clash fails before the app is changed
                already_routed(app, endpoint)
        app.extensions["statefun"] = StatefunState(handler=handler)
        app.register_blueprint(make_blueprint(handler, url_prefix=config["STATEFUN_URL_PREFIX"]))
        if config["STATEFUN_ENDPOINTS"]:
            route_endpoints(app, handler.endpoints)

    @property
    def handler(self) -> RequestReplyHandler:
        """The current app's handler (inside an application context)."""
        state: StatefunState = current_app.extensions["statefun"]
        return state.handler


def check_config(config: Mapping[str, Any]) -> None:
    """``ValueError`` naming a key whose value the extension cannot take: a string read from
    the environment would pass unnoticed (``"false"`` turns the endpoints on) or fail every
    request (``MAX_CONTENT_LENGTH``)."""
    endpoints = config["STATEFUN_ENDPOINTS"]
    if type(endpoints) not in (bool, int) or endpoints not in (0, 1):  # 0 and 1 count
        raise ValueError(
            f"statefun_flask: STATEFUN_ENDPOINTS must be True or False, not {endpoints!r}"
        )
    maximum = config.get("MAX_CONTENT_LENGTH")
    if maximum is not None and type(maximum) is not int:
        raise ValueError(
            f"statefun_flask: MAX_CONTENT_LENGTH must be an int or None, not {maximum!r} "
            "(compared with each request's length, it would fail every request)"
        )
    prefix = config["STATEFUN_URL_PREFIX"]
    if not isinstance(prefix, str) or (prefix and not prefix.startswith("/")):  # "": the root
        raise ValueError(
            f"statefun_flask: STATEFUN_URL_PREFIX must start with '/', not {prefix!r} "
            "(the path the runtime POSTs to, such as '/statefun')"
        )
