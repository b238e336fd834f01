"""``statefun_django.middleware.statefun_middleware``: the trace context for the core's hooks.

The views give the core's hooks the request headers, so a tracing plugin continues the trace
of the runtime's request (``traceparent``). Behind an HTTP instrumentation that opens its own
server span (opentelemetry-instrumentation-django), add this middleware after it: it gives the
hooks the headers with that span's context instead, so statefun's spans nest under it. It works
under WSGI and ASGI alike, and without OpenTelemetry installed it passes the headers as they are.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Union

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import sync_and_async_middleware

__all__ = ["statefun_middleware"]

GetResponse = Callable[[HttpRequest], Union[HttpResponse, Awaitable[HttpResponse]]]


@sync_and_async_middleware
def statefun_middleware(get_response: GetResponse) -> Callable[[HttpRequest], Any]:
    if iscoroutinefunction(get_response):

        async def async_middleware(request: HttpRequest) -> HttpResponse:
            request.statefun_headers = current_headers(request)  # type: ignore[attr-defined]
            return await get_response(request)  # type: ignore[no-any-return]

        return async_middleware

    def middleware(request: HttpRequest) -> HttpResponse:
        request.statefun_headers = current_headers(request)  # type: ignore[attr-defined]
        return get_response(request)  # type: ignore[return-value]

    return middleware


def current_headers(request: HttpRequest) -> dict[str, str]:
    """The request's headers, lower-cased, carrying the current span's context if any."""
    headers = {key.lower(): value for key, value in request.headers.items()}
    try:
        from opentelemetry import propagate, trace
    except ImportError:
        return headers
    if trace.get_current_span().get_span_context().is_valid:
        propagate.inject(headers)
    return headers
