"""What every web-framework integration shares: the content type and the status mapping.

An integration reads the body, calls the handler, and on an exception answers with
:func:`error_response`; nothing of this module depends on a web framework.
"""

from __future__ import annotations

import logging

from .errors import FunctionFailedError, LimitExceededError, StatefunError
from .limits import DEFAULT_LIMITS

__all__ = ["CONTENT_TYPE", "DEFAULT_MAX_REQUEST_BYTES", "error_response", "status_for"]

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

logger = logging.getLogger("statefun_core")


def status_for(error: BaseException) -> int:
    """The HTTP status for an exception raised by ``handle_sync``/``handle_async``."""
    if isinstance(error, StatefunError):
        return error.status
    return 500


def error_response(error: BaseException) -> tuple[int, str]:
    """``(status, short text body)`` for an exception; never exposes a traceback.

    Server errors (5xx) are logged here with their traceback, so every integration logs alike.
    """
    status = status_for(error)
    if status >= 500:
        logger.error("statefun request failed: %s", error, exc_info=error)
    else:
        logger.info("statefun request rejected (%d): %s", status, error)
    text = _REASONS.get(status, "Error")
    # A limit is configuration, not an internal: name it, so the operator knows what to raise.
    limit = error.__cause__ if isinstance(error, FunctionFailedError) else error
    if isinstance(limit, LimitExceededError):
        text = f"{text}: {limit}"
    return status, text
