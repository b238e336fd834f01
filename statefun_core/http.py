"""What every web-framework integration shares: the handler it serves, the content type and
the status mapping.

An integration takes functions or a handler (:func:`as_handler`), reads the body, calls the
handler, and on an exception answers with :func:`error_response`; nothing of this module
depends on a web framework.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import Executor
from importlib import import_module
from importlib.util import find_spec
from typing import Any, Callable, Optional, Union

import pluggy

from .errors import (
    FunctionFailedError,
    IntegrationNotAvailableError,
    LimitExceededError,
    StatefunError,
)
from .functions import StatefulFunctions
from .handler import RequestReplyHandler
from .limits import DEFAULT_LIMITS
from .plugins.logcontext import log_line, trace_id

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_MAX_REQUEST_BYTES",
    "FunctionsOrHandler",
    "as_handler",
    "error_response",
    "integration_exports",
    "status_for",
]

#: What an integration serves: functions (it makes the handler) or a handler made by the user.
FunctionsOrHandler = Union[StatefulFunctions, RequestReplyHandler]

#: The only content type the StateFun runtime accepts on a reply (no charset parameter).
CONTENT_TYPE = "application/octet-stream"

#: The default request-body limit, for integrations that enforce it with their framework.
DEFAULT_MAX_REQUEST_BYTES: int = DEFAULT_LIMITS.request_bytes  # type: ignore[assignment]

_REASONS = {
    400: "Bad Request: the body is not a StateFun ToFunction message",
    404: "Not Found: no function is bound to the request's typename",
    405: "Method Not Allowed: StateFun requests are POST",
    413: "Payload Too Large: the request is over the endpoint's limits",
    500: "Internal Server Error: the function failed",
}

logger: logging.Logger = logging.getLogger("statefun_core")


def as_handler(
    functions_or_handler: FunctionsOrHandler,
    *,
    executor: Optional[Executor] = None,
    plugins: Optional[pluggy.PluginManager] = None,
) -> RequestReplyHandler:
    """The handler to serve: the given one, or a new one for ``StatefulFunctions`` made with
    ``executor`` and ``plugins``. A ready handler has its own, so passing them with one is a
    ``ValueError``; anything else is a ``TypeError``."""
    if isinstance(functions_or_handler, RequestReplyHandler):
        if executor is not None or plugins is not None:
            raise ValueError("pass executor and plugins to the RequestReplyHandler itself")
        return functions_or_handler
    if isinstance(functions_or_handler, StatefulFunctions):
        return RequestReplyHandler(functions_or_handler, executor=executor, plugins=plugins)
    raise TypeError(
        "expected a StatefulFunctions or a RequestReplyHandler, "
        f"got {type(functions_or_handler).__name__}"
    )


def status_for(error: BaseException) -> int:
    """The HTTP status for an exception raised by ``handle_sync``/``handle_async``."""
    if isinstance(error, StatefunError):
        return error.status
    return 500


def error_response(error: BaseException) -> tuple[int, str]:
    """``(status, short text body)`` for an exception; never exposes a traceback.

    Logged here, so every integration logs alike: server errors (5xx) with their traceback; a
    request the runtime sent and will send again for ever (a malformed or too large body, an
    unknown function: the deployment is wrong) as a warning; a wrong method (a probe, a
    browser) as info. A function's failure (``FunctionFailedError``) is not: the handler
    logged it where it failed, inside the invocation's trace and log context. The record of a
    request the handler refused (:meth:`RequestReplyHandler.reject`) has the attribute
    ``trace_id``: the current OpenTelemetry span's, else the request's ``traceparent``'s.
    """
    status = status_for(error)
    if status >= 500:
        if not isinstance(error, FunctionFailedError):  # logged by the handler
            log_line(
                logger,
                logging.ERROR,
                "statefun request failed: %s",
                error,
                fields=_trace_of(error),
                exc_info=error,
            )
    else:
        level = logging.INFO if status == 405 else logging.WARNING
        message = "statefun request rejected (%d): %s"
        log_line(logger, level, message, status, error, fields=_trace_of(error))
    text = _REASONS.get(status, "Error")
    if status == 500 and not isinstance(error, FunctionFailedError):
        text = "Internal Server Error"  # the server's own failure (a misconfiguration, a bug)
    # A limit is configuration, not an internal: name it, so the operator knows what to raise.
    limit = error.__cause__ if isinstance(error, FunctionFailedError) else error
    if isinstance(limit, LimitExceededError):
        text = f"{text}: {limit}"
    return status, text


def _trace_of(error: BaseException) -> dict[str, Optional[str]]:
    """The ``extra`` of a failed request's record: its trace id (see ``error_response``)."""
    return {"trace_id": trace_id(getattr(error, "traceparent", None))}


def integration_exports(
    package: str, exports: Mapping[str, str], *, framework: str, install: str
) -> Callable[[str], Any]:
    """For an integration's ``__init__``: ``__getattr__ = integration_exports(__name__, ...)``.

    Raises :class:`IntegrationNotAvailableError` (``pip install <install>``) at once when the
    ``framework`` module is not installed, and returns the package's ``__getattr__``, which
    imports each exported name (name -> submodule, ``".app"``) on first use. So the framework
    is imported when the integration is used, not with the package: the plugin host loads
    every installed integration's entry point with each handler, and an application served
    by one framework (or a Lambda function) does not pay for importing the others.
    """
    if find_spec(framework) is None:
        raise IntegrationNotAvailableError(f"{package} needs {framework}: pip install {install}")

    def __getattr__(name: str) -> Any:
        submodule = exports.get(name)
        if submodule is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(submodule, package), name)

    return __getattr__
