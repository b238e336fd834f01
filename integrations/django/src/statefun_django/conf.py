"""The ``STATEFUN`` settings dict, its defaults, and the handler built from it.

Both are read once and dropped when the setting changes (``override_settings`` works).
"""

from __future__ import annotations

import functools
from importlib.util import find_spec
from types import ModuleType
from typing import Any, Mapping, Optional, Sequence, Union

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils.module_loading import import_string
from django.utils.regex_helper import normalize

from statefun_core import Limits, RequestReplyHandler, StatefulFunction, StatefulFunctions
from statefun_core.errors import PluginError, UnknownTypeError
from statefun_core.limits import DEFAULT_LIMITS

__all__ = [
    "DEFAULTS",
    "StatefunConfigError",
    "configured_limits",
    "endpoint_path",
    "endpoint_paths",
    "get_handler",
    "get_settings",
    "handler_error",
    "load_functions",
    "merge_functions",
]

DEFAULTS: dict[str, Any] = {
    # A StatefulFunctions, or the dotted path to one, or a list of those: they are served
    # together, and a typename bound in two of them is an error (statefun.E004).
    "FUNCTIONS": None,
    # Which view ``statefun_django.urls`` serves: True the async one (ASGI), False the sync one
    # (WSGI), None decides when the URLconf is first loaded (async inside an event loop).
    "ASYNC": None,
    # Serve the endpoints the plugins contribute (``metrics`` of statefun-prometheus, health)
    # under the endpoint's path; read on each request to them (404 when off).
    "ENDPOINTS": True,
    # What a request may carry and a batch may produce: a statefun_core.Limits, or a dict of
    # its fields (the others keep their defaults); None: the defaults (statefun.E005).
    "LIMITS": None,
}

FunctionsSetting = Union[str, StatefulFunctions]


class StatefunConfigError(ImproperlyConfigured):
    """A misconfigured ``STATEFUN`` setting; ``id`` is the system check that reports it."""

    def __init__(self, id: str, message: str) -> None:
        super().__init__(message)
        self.id = id


@functools.cache
def get_settings() -> dict[str, Any]:
    """``STATEFUN`` over :data:`DEFAULTS`; ``statefun.E001`` when it is not a dict,
    ``statefun.E007`` when ``ASYNC`` or ``ENDPOINTS`` is not what they take (``"false"`` would
    read as true)."""
    statefun = getattr(settings, "STATEFUN", {})
    if not isinstance(statefun, Mapping):
        raise StatefunConfigError(
            "statefun.E001", f"STATEFUN must be a dict, not a {type(statefun).__name__}"
        )
    merged = {**DEFAULTS, **statefun}
    problems = []  # both flags named at once, not one per run of manage.py check
    for key, allowed in (("ASYNC", (True, False, None)), ("ENDPOINTS", (True, False))):
        value = merged[key]  # a bool, or 0 or 1 as Python reads them
        if not any(value is flag or (type(value) is int and value == flag) for flag in allowed):
            problems.append(
                f'STATEFUN["{key}"] must be {" or ".join(map(str, allowed))}, not {value!r}'
            )
    if problems:
        raise StatefunConfigError("statefun.E007", "; ".join(problems))
    return merged


def configured_functions() -> list[FunctionsSetting]:
    """``STATEFUN["FUNCTIONS"]`` as a list; raises ``statefun.E001`` when it is not set."""
    value = get_settings()["FUNCTIONS"]
    if not value:
        raise StatefunConfigError(
            "statefun.E001",
            'STATEFUN["FUNCTIONS"] is not set: name the StatefulFunctions to serve, '
            'e.g. STATEFUN = {"FUNCTIONS": "proj.fns.functions"}',
        )
    return list(value) if isinstance(value, (list, tuple)) else [value]


def load_functions(entry: FunctionsSetting) -> StatefulFunctions:
    """One entry of ``FUNCTIONS``: imported if it is a dotted path (``statefun.E002``) and
    checked to be a ``StatefulFunctions`` (``statefun.E003``)."""
    functions: Any = entry
    if isinstance(entry, str):
        try:
            functions = import_string(entry)
        except ImportError as error:
            if ":" in entry:  # "module:attribute", as gunicorn and Flask write it
                hint = f": write it with dots: {entry.replace(':', '.')!r}"
            else:
                hint = _MODULE_HINT.format(entry=entry) if _is_module(entry) else ""
            raise StatefunConfigError(
                "statefun.E002", f'STATEFUN["FUNCTIONS"]: cannot import {entry!r}: {error}{hint}'
            ) from error
    if not isinstance(functions, StatefulFunctions):
        hint = _MODULE_HINT.format(entry=entry) if isinstance(functions, ModuleType) else ""
        raise StatefunConfigError(
            "statefun.E003",
            f'STATEFUN["FUNCTIONS"]: {entry!r} is a {type(functions).__name__}, '
            f"not a StatefulFunctions{hint}",
        )
    return functions


_MODULE_HINT = ": name the StatefulFunctions in the module, such as '{entry}.functions'"


def _is_module(path: str) -> bool:
    """Whether ``path`` names a module, found without running it."""
    try:
        return find_spec(path) is not None
    except (ImportError, ValueError):
        return False


def merge_functions(collections: list[StatefulFunctions]) -> StatefulFunctions:
    """One ``StatefulFunctions`` serving them all, and what they bind later; a typename bound
    in two of them is ``statefun.E004``."""
    if len(collections) == 1:
        return collections[0]
    merged = _Merged()
    for functions in collections:
        follower = _Follower(merged, functions)
        for function in functions:
            follower.add(function)
        merged.followers.append(follower)
        # like a handler, told of each function bound from now on, before it is added
        functions._served_by(follower.bound)
    return merged


class _Merged(StatefulFunctions):
    __slots__ = ("followers",)

    def __init__(self) -> None:
        super().__init__()
        self.followers: list[_Follower] = []  # held here: the collections hold them weakly


class _Follower:
    """Copies into ``merged`` each function that ``functions`` holds or binds."""

    __slots__ = ("__weakref__", "functions", "merged")

    def __init__(self, merged: StatefulFunctions, functions: StatefulFunctions) -> None:
        self.merged = merged
        self.functions = functions

    def bound(self, function: StatefulFunction) -> None:
        # a typename bound again in the same collection replaces its function
        self.add(function, rebound=function.typename in self.functions)

    def add(self, function: StatefulFunction, *, rebound: bool = False) -> None:
        if function.typename in self.merged and not rebound:
            raise StatefunConfigError(
                "statefun.E004",
                f'STATEFUN["FUNCTIONS"]: {function.typename!r} is bound in more than one '
                "of the configured StatefulFunctions",
            )
        self.merged.register(
            function.typename,
            function.fun,
            function.specs,
            blocking=function.blocking,
            final_errors=function.final_errors,
            final_unreadable=function.final_unreadable,
            dead_letters=function.dead_letters,
        )


def configured_limits() -> Limits:
    """``STATEFUN["LIMITS"]`` as a ``Limits``; ``statefun.E005`` when it cannot be one."""
    value = get_settings()["LIMITS"]
    if value is None:
        return DEFAULT_LIMITS
    if isinstance(value, Limits):
        return value
    if not isinstance(value, Mapping):
        raise StatefunConfigError(
            "statefun.E005",
            'STATEFUN["LIMITS"] must be a statefun_core.Limits or a dict of its fields, '
            f"not a {type(value).__name__}",
        )
    try:
        return Limits(**value)
    except (TypeError, ValueError) as error:
        raise StatefunConfigError("statefun.E005", f'STATEFUN["LIMITS"]: {error}') from None


@functools.cache
def get_handler() -> RequestReplyHandler:
    """The handler serving ``STATEFUN["FUNCTIONS"]`` within ``STATEFUN["LIMITS"]``, made on
    first use."""
    collections = [load_functions(entry) for entry in configured_functions()]
    return RequestReplyHandler(merge_functions(collections), limits=configured_limits())


def handler_error() -> Optional[str]:
    """Why the handler cannot be built (a state type no plugin resolves, a plugin that fails to
    load), or None; a misconfigured setting is left to its own check."""
    try:
        handler = get_handler()
        if get_settings()["ENDPOINTS"]:  # served under the prefix, as the function endpoint
            handler.check_endpoints_clear_of("/")
    except StatefunConfigError:
        return None
    except (UnknownTypeError, PluginError) as error:
        return str(error)
    return None


def reload(*, setting: str, **kwargs: Any) -> None:
    """``setting_changed`` receiver: forget what was read from ``STATEFUN``."""
    if setting == "STATEFUN":
        get_settings.cache_clear()
        get_handler.cache_clear()


setting_changed.connect(reload, dispatch_uid="statefun_django.conf.reload")


def endpoint_paths() -> list[str]:
    """The paths the function endpoint is served at in the project's URLconf, in its order:
    routed by ``statefun_urls``, by the include, or by hand (a view of
    ``statefun_django.views``); a route with parameters is left out."""
    from .views import is_endpoint_view  # views imports this module

    paths: list[str] = []

    def walk(patterns: Sequence[Union[URLPattern, URLResolver]], prefix: str) -> None:
        for entry in patterns:
            # the paths Django's reverse() would make of the pattern ("^statefun/?" is
            # "statefun"); normalize() makes "" of one it can not reverse (an alternation),
            # which the pattern then does not match
            for route, parameters in normalize(entry.pattern.regex.pattern):
                if parameters or not entry.pattern.regex.match(route):
                    continue
                if isinstance(entry, URLResolver):
                    walk(entry.url_patterns, prefix + route)
                elif is_endpoint_view(entry.callback):
                    paths.append(f"/{prefix}{route}")

    walk(get_resolver().url_patterns, "")
    return list(dict.fromkeys(paths))


def endpoint_path() -> Optional[str]:
    """The path to name in ``module.yaml``: the first of ``endpoint_paths()`` without a
    trailing slash, else the first; None when the endpoint is not routed."""
    paths = endpoint_paths()
    for path in paths:
        if path == "/" or not path.endswith("/"):
            return path
    return paths[0] if paths else None
