"""The endpoint views: a sync one for WSGI and an async one for ASGI, alike in all else.

Both are CSRF-exempt (the runtime POSTs protobuf, no token), need no login (it has no
session either) and answer every method but POST with 405. Statuses and error texts come from
``statefun_core.http.error_response``. What the views refuse before the handler sees the body
(a wrong method, a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE``, one the server cannot hand
over whole) reaches the ``statefun_request_failed`` hook too.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

from asgiref.sync import SyncToAsync
from django.apps import apps
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse
from django.views import View

from statefun_core.errors import (
    MalformedRequestError,
    MethodNotAllowedError,
    RequestTooLargeError,
    StatefunError,
)
from statefun_core.http import CONTENT_TYPE, error_response
from statefun_core.plugins import Endpoint, allowed_methods
from statefun_core.serving import declared_length as parse_length
from statefun_core.wsgi import (
    incomplete,
    input_errors,
    read_terminated,
    unreadable,
    unterminated,
)

from .conf import StatefunConfigError, get_handler, get_settings

__all__ = [
    "AsyncStatefunView",
    "RequestHeaders",
    "StatefunView",
    "endpoint_view",
    "plugin_endpoint_view",
]


class _EndpointView(View):
    http_method_names: list[str] = ["post"]  # any other method ends in http_method_not_allowed

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Callable[..., Any]:
        view = super().as_view(**initkwargs)
        if cls.setup is View.setup and cls.dispatch is View.dispatch:
            view = cls._one_method_view(view, initkwargs)
        view.csrf_exempt = True  # type: ignore[attr-defined]
        # login_not_required (Django 5.1's LoginRequiredMiddleware): the runtime has no session,
        # and would get a redirect to the login page, which it does not follow
        view.login_required = False  # type: ignore[attr-defined]
        return view

    @classmethod
    def _one_method_view(
        cls, django_view: Callable[..., Any], initkwargs: dict[str, Any]
    ) -> Callable[..., Any]:
        """Django's view (``django_view``) for a view of one method: what View's setup and
        dispatch do, in the view itself. Their look for a GET to answer HEAD with and for a
        handler by the method's name, and the calls to them, cost more than the rest of the
        view; a subclass that overrides either gets Django's view."""

        new_view: Callable[[], _EndpointView] = functools.partial(cls, **initkwargs)
        if not initkwargs and cls.__init__ is View.__init__:  # which only sets initkwargs:
            new_view = functools.partial(cls.__new__, cls)  # a class call with it costs more

        def view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            self = new_view()
            self.request, self.args, self.kwargs = request, args, kwargs
            if request.method == "POST":
                return self.post(request)  # type: ignore[attr-defined]
            return self.http_method_not_allowed(request)

        # view_class, view_initkwargs, the mark of an async view, ...
        view.__dict__.update(django_view.__dict__)
        view.__doc__, view.__module__ = django_view.__doc__, django_view.__module__
        view.__annotations__ = django_view.__annotations__
        return view

    def http_method_not_allowed(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        response = rejected(request, MethodNotAllowedError(method=request.method))
        if self.view_is_async:

            async def respond() -> HttpResponse:
                return response

            return respond()
        return response


def is_endpoint_view(view: Callable[..., Any]) -> bool:
    """Whether ``view`` (a URL pattern's callback) is one of the function endpoint's views."""
    view_class = getattr(view, "view_class", None)
    return isinstance(view_class, type) and issubclass(view_class, _EndpointView)


class StatefunView(_EndpointView):
    """Runs ``handle_sync`` on the request's thread: the view for WSGI."""

    def post(self, request: HttpRequest) -> HttpResponse:
        handler = get_handler()
        try:
            body = read_body(request, handler.limits.request_bytes)
        except RequestDataTooBig:
            return rejected(request, too_large(request))
        except (RequestTooLargeError, MalformedRequestError) as error:
            return rejected(request, error)
        reply_headers: dict[str, str] = {}  # what the plugins answer with (a traceresponse)
        try:
            reply = handler.handle_sync(body, statefun_headers(request), reply_headers)
        except Exception as error:
            return statefun_error(error)
        return reply_response(reply, reply_headers)


class AsyncStatefunView(_EndpointView):
    """Awaits ``handle_async`` on the event loop: the view for ASGI (served by WSGI too, as
    ``STATEFUN["ASYNC"]`` set for the other server makes it, it reads the body as the sync
    view does: Django alone reads a chunked body as empty there)."""

    async def post(self, request: HttpRequest) -> HttpResponse:
        handler = get_handler()
        limit = handler.limits.request_bytes
        try:
            if "wsgi.input" in request.META:  # a WSGIRequest: see read_body
                body = read_body(request, limit)
            else:
                check_declared_length(declared_length(request), limit)
                body = request.body
        except RequestDataTooBig:
            return rejected(request, too_large(request))
        except (RequestTooLargeError, MalformedRequestError) as error:
            return rejected(request, error)
        reply_headers: dict[str, str] = {}  # what the plugins answer with (a traceresponse)
        try:
            reply = await handler.handle_async(body, statefun_headers(request), reply_headers)
        except Exception as error:
            return statefun_error(error)
        return reply_response(reply, reply_headers)


def reply_response(reply: bytes, headers: dict[str, str]) -> HttpResponse:
    """The function's reply, with the plugins' ``headers`` and its ``Content-Length``: a
    Django response has none without ``CommonMiddleware``, and the server then sends the
    reply chunked (gunicorn, uvicorn): gunicorn with one more write."""
    response = HttpResponse(reply, content_type=CONTENT_TYPE, headers=headers)
    response["Content-Length"] = str(len(reply))  # not in headers: a third less to set it
    return response


def endpoint_view() -> Callable[..., Any]:
    """The view ``statefun_django.urls`` serves, per ``STATEFUN["ASYNC"]``, read when the
    patterns are made (as the URLconf is loaded), not per request.

    ``None`` (the default) picks the async view when the URLconf is loaded inside a running
    event loop, which is how an ASGI server first loads it (unless something loaded it before),
    or in a thread that ``sync_to_async`` runs a sync middleware in for one.
    """
    if apps.ready and not apps.is_installed("statefun_django"):
        logging.getLogger("statefun_django").warning(
            'statefun_django is not in INSTALLED_APPS: the endpoint is served, but "manage.py '
            'check" does not check STATEFUN, and a mistake in it fails the first request '
            'rather than the start-up; add "statefun_django" to INSTALLED_APPS'
        )
    try:
        use_async = get_settings()["ASYNC"]
    except StatefunConfigError:
        use_async = None  # STATEFUN is not a dict: statefun.E001 reports it, and requests fail
    if use_async is None:
        use_async = _under_an_event_loop()
    return (AsyncStatefunView if use_async else StatefunView).as_view()


def _under_an_event_loop() -> bool:
    """Whether this thread runs an event loop, or is one ``sync_to_async`` runs sync code in
    for a running loop: under ASGI, a sync middleware (``LocaleMiddleware``, which looks for
    ``i18n_patterns``) loads the URLconf there."""
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        pass
    # asgiref's own record of the loop a sync_to_async thread works for (its AsyncToSync
    # reads it), with the process it was set in: a forked worker inherits none
    threadlocal = SyncToAsync.threadlocal
    loop = getattr(threadlocal, "main_event_loop", None)
    if getattr(threadlocal, "main_event_loop_pid", None) != os.getpid():
        return False
    return isinstance(loop, asyncio.AbstractEventLoop) and loop.is_running()


def statefun_headers(request: HttpRequest) -> Mapping[str, str]:
    """The headers the core's hooks see: those the middleware prepared, or the request's."""
    # vars(): a getattr with a default raises and catches AttributeError on most requests
    prepared: Optional[Mapping[str, str]] = vars(request).get("statefun_headers")
    if prepared is None:  # RequestHeaders(request) without a call to __init__: a class call
        headers = _new_headers(RequestHeaders)  # with one costs several times more
        headers._request = request
        return headers
    return prepared


class RequestHeaders(Mapping[str, str]):
    """``request.headers`` (case-insensitive), made only if a hook reads it: most requests
    have no plugin that does, and Django builds it from the whole of ``META``."""

    __slots__ = ("_request",)

    def __init__(self, request: HttpRequest) -> None:
        self._request = request

    def __getitem__(self, key: str) -> str:
        return self._request.headers[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._request.headers)

    def __len__(self) -> int:
        return len(self._request.headers)

    def __bool__(self) -> bool:
        return True  # a request has headers; spares building them (``headers or {}``)


_new_headers = RequestHeaders.__new__


def read_body(request: HttpRequest, limit: Optional[int]) -> bytes:
    """The request body under WSGI; ``limit`` is the handler's ``Limits.request_bytes``.

    Django reads a body sent without a ``Content-Length`` (chunked) as empty. A server that
    ends the input stream with the body says so (``wsgi.input_terminated``, as gunicorn does);
    then it is read here, to one byte over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (or, without it,
    over ``limit``) at most. Without that setting, a declared length over ``limit`` is refused
    unread (:func:`check_declared_length`; under ASGI, Django has spooled the body to a file
    before the view runs).

    A chunked body the server does not end (Django's development server) is a
    ``MalformedRequestError`` (400) that says so. So is a body the server cannot hand over
    whole: one shorter than its ``Content-Length`` (gunicorn hands over what came before the
    client stopped), or one whose reading raised (a malformed chunk, a client gone:
    ``input_errors``).
    """
    meta = request.META
    length = meta.get("CONTENT_LENGTH")
    if length or not meta.get("wsgi.input_terminated"):
        if (
            not length
            and "wsgi.input" in meta  # under ASGI Django has read the body (spooled) already
            and "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower()
        ):
            raise unterminated()  # Django would read it as empty
        declared = parse_length(length or None)
        check_declared_length(declared, limit)
        try:
            body = request.body
        except input_errors() as error:  # Django's UnreadablePostError is an OSError
            raise unreadable(error) from None
        if declared is not None and len(body) != declared:
            raise incomplete(len(body), declared)
        return body
    setting = "DATA_UPLOAD_MAX_MEMORY_SIZE"
    maximum = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if maximum is None:
        maximum, setting = limit, "Limits.request_bytes"
    return read_terminated(meta["wsgi.input"], maximum, setting)


def declared_length(request: HttpRequest) -> Optional[int]:
    """The request's ``Content-Length``, or None when it has none (or not a number)."""
    return parse_length(request.META.get("CONTENT_LENGTH") or None)


def check_declared_length(declared: Optional[int], limit: Optional[int]) -> None:
    """Without ``DATA_UPLOAD_MAX_MEMORY_SIZE`` Django reads a body of any declared length:
    one declared over the handler's ``Limits.request_bytes`` (``limit``) is refused here
    (``RequestTooLargeError``), unread, as Django refuses one over its setting (the setting
    read only then: through Django's lazy settings, a read costs a few calls)."""
    if (
        declared is not None
        and limit is not None
        and declared > limit
        and settings.DATA_UPLOAD_MAX_MEMORY_SIZE is None  # else Django checks its own
    ):
        raise RequestTooLargeError(declared, limit, "Limits.request_bytes")


def too_large(request: HttpRequest) -> RequestTooLargeError:
    """Django refused the body (``RequestDataTooBig``): by its declared length, or, for a
    chunked body under ASGI, while reading it (its length is then unknown)."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0
    return RequestTooLargeError(declared_length(request), limit, "DATA_UPLOAD_MAX_MEMORY_SIZE")


def rejected(request: HttpRequest, error: StatefunError) -> HttpResponse:
    """The answer to a request refused before the handler saw its body (a wrong method, a body
    over ``DATA_UPLOAD_MAX_MEMORY_SIZE``): the plugins hear of it like of any rejected request."""
    get_handler().reject(error, statefun_headers(request))
    return statefun_error(error)


def statefun_error(error: BaseException) -> HttpResponse:
    """The response for a failed request: the core's status and short text, no traceback.

    Logged once, by the core (with the function's trace and log context): marked so, as
    Django marks a response it logged itself, so that ``django.request`` does not log it
    again without them."""
    status, text = error_response(error)
    response = HttpResponse(text, status=status, content_type="text/plain; charset=utf-8")
    response["Content-Length"] = str(len(response.content))
    response._has_been_logged = True  # type: ignore[attr-defined]
    if status == 405:
        response["Allow"] = "POST"
    return response


def plugin_endpoint_view(endpoints: Sequence[Endpoint]) -> Callable[..., HttpResponse]:
    """The view of the endpoints plugins contribute at one path (``metrics``, health): each
    method answered by its endpoint (``HEAD`` by the ``GET`` one), any other a 405 with
    ``Allow``. ``STATEFUN["ENDPOINTS"]`` and the handler that answers are read on each
    request, so that they follow the setting.

    The view of ``GET`` endpoints only is CSRF-exempt: the middleware would answer an unsafe
    method 403 before the view could say 405, and for such a method the view does nothing.
    """
    endpoint_path = endpoints[0].path

    def view(request: HttpRequest) -> HttpResponse:
        # The include matches "metrics" after a prefix with or without its slash: not
        # "/statefunmetrics".
        if not get_settings()["ENDPOINTS"] or not request.path_info.endswith(endpoint_path):
            raise Http404
        handler = get_handler()
        current = handler.endpoint_for(request.method or "", endpoint_path)
        if current is None:
            allow = allowed_methods(handler.endpoints, endpoint_path)
            if not allow:
                raise Http404  # the handler built since has none here
            response = HttpResponse(
                "Method Not Allowed", status=405, content_type="text/plain; charset=utf-8"
            )
            response["Allow"] = allow
        else:
            status, headers, body = current.respond(RequestHeaders(request))
            response = HttpResponse(body, status=status)
            for name, value in headers.items():
                response[name] = value
        response["Content-Length"] = str(len(response.content))
        return response

    if all(endpoint.method == "GET" for endpoint in endpoints):
        view.csrf_exempt = True  # type: ignore[attr-defined]
    return view
