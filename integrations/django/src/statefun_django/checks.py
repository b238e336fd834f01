"""System checks (``manage.py check``) for the ``STATEFUN`` setting.

- ``statefun.E001``: ``STATEFUN["FUNCTIONS"]`` is not set (or ``STATEFUN`` is not a dict).
- ``statefun.E002``: a dotted path in it cannot be imported.
- ``statefun.E003``: an entry is not a ``StatefulFunctions``.
- ``statefun.E004``: a typename is bound in more than one of the configured collections.
- ``statefun.E005``: ``STATEFUN["LIMITS"]`` is neither a ``Limits`` nor a dict of its fields.
- ``statefun.E006``: the handler cannot be built: a state's class no plugin resolves (a type
  plugin not installed, or disabled), or a plugin that fails to load.
- ``statefun.E007``: ``STATEFUN["ASYNC"]`` is not True, False or None, or
  ``STATEFUN["ENDPOINTS"]`` not True or False.
- ``statefun.E008``: ``DATA_UPLOAD_MAX_MEMORY_SIZE`` is neither an int nor None (a string
  read from the environment), which fails every request with a body.
- ``statefun.W001``: ``STATEFUN`` has a key this app does not know (a typo?), reported with
  the errors above.
- ``statefun.W002``: the endpoint is served at a URL ending in ``/`` but not without it,
  where module.yaml files point the runtime (which follows no redirect).
- ``statefun.W003``: ``DATA_UPLOAD_MAX_MEMORY_SIZE`` is left at Django's default (2.5 MB),
  under the runtime's batches.
- ``statefun.W005``: ``PREPEND_WWW`` answers the runtime's POST to a host without ``www.``
  with a 301, which the runtime does not follow.
- ``statefun.W004`` (``check --deploy``): ``SECURE_SSL_REDIRECT`` answers the runtime's
  plain-http POST to the endpoint with a 301, which the runtime does not follow (behind a
  TLS-terminating proxy too, unless the POST comes through it).
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Optional, Sequence

from django.apps import AppConfig
from django.conf import global_settings, settings
from django.core.checks import CheckMessage, Error, Warning
from django.urls import Resolver404, resolve

from .conf import (
    DEFAULTS,
    StatefunConfigError,
    configured_functions,
    configured_limits,
    endpoint_paths,
    get_settings,
    handler_error,
    load_functions,
    merge_functions,
)
from .views import is_endpoint_view

__all__ = ["check_settings", "check_ssl_redirect", "check_urls"]


def check_settings(
    app_configs: Optional[Sequence[AppConfig]] = None, **kwargs: Any
) -> list[CheckMessage]:
    statefun = getattr(settings, "STATEFUN", {})
    messages: list[CheckMessage] = [
        Warning(
            f"STATEFUN has an unknown key {key!r}",
            hint=f"known: {sorted(DEFAULTS)}",
            id="statefun.W001",
        )
        for key in (statefun if isinstance(statefun, Mapping) else ())
        if key not in DEFAULTS
    ]
    try:
        get_settings()
        entries = configured_functions()
    except StatefunConfigError as error:
        return [*messages, Error(str(error), id=error.id)]
    collections = []
    for entry in entries:
        try:
            collections.append(load_functions(entry))
        except StatefunConfigError as error:
            messages.append(Error(str(error), id=error.id))
    try:
        merge_functions(collections)
    except StatefunConfigError as error:
        messages.append(Error(str(error), id=error.id))
    try:
        configured_limits()
    except StatefunConfigError as error:
        messages.append(Error(str(error), id=error.id))
    if not any(message.is_serious() for message in messages):
        problem = handler_error()
        if problem is not None:
            messages.append(Error(problem, id="statefun.E006"))
    upload_limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if upload_limit is not None and type(upload_limit) is not int:
        messages.append(
            Error(
                f"DATA_UPLOAD_MAX_MEMORY_SIZE must be an int (bytes) or None, not "
                f"{upload_limit!r}: Django compares it with each request's length, and every "
                "request with a body fails, the runtime's too",
                hint="DATA_UPLOAD_MAX_MEMORY_SIZE = 32 * 1024 * 1024 (int(...) of a value "
                "read from the environment)",
                id="statefun.E008",
            )
        )
    elif upload_limit == global_settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
        messages.append(
            Warning(
                "DATA_UPLOAD_MAX_MEMORY_SIZE is Django's default 2.5 MB: a batch over it (the "
                "functions' state travels in it) is answered 413, which the runtime sends "
                "again for ever",
                hint="set DATA_UPLOAD_MAX_MEMORY_SIZE = 32 * 1024 * 1024 (the runtime's "
                "largest batch by default), or None to leave it to STATEFUN['LIMITS']",
                id="statefun.W003",
            )
        )
    return messages


def _endpoint_paths() -> list[str]:
    """The paths the endpoint is routed at, however it is routed; none from a URLconf that
    does not load on the setting (``check_settings`` reports that)."""
    try:
        return endpoint_paths()
    except StatefunConfigError:
        return []


def _serves_endpoint(path: str) -> bool:
    try:
        return is_endpoint_view(resolve(path).func)
    except Resolver404:
        return False


def check_urls(
    app_configs: Optional[Sequence[AppConfig]] = None, **kwargs: Any
) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for url in _endpoint_paths():
        bare = url.rstrip("/")
        if not bare or bare == url or _serves_endpoint(bare):
            continue
        messages.append(
            Warning(
                f"the StateFun endpoint is served at {url} but not at {bare}: a runtime whose "
                f"module.yaml names {bare} gets a 404, or from APPEND_SLASH a redirect it does "
                "not follow (a 500 with DEBUG)",
                hint=f'route with urlpatterns = [*statefun_urls("{bare.lstrip("/")}")] '
                "(from statefun_django.urls), which serves both, or route the view at both "
                f'paths: path("{bare.lstrip("/")}", view) beside path("{url.lstrip("/")}", view)',
                id="statefun.W002",
            )
        )
    common = "django.middleware.common.CommonMiddleware"
    if settings.PREPEND_WWW and common in settings.MIDDLEWARE and _endpoint_paths():
        messages.append(
            Warning(
                "PREPEND_WWW redirects the runtime's POST to the endpoint with a 301, which the "
                "runtime does not follow, unless the host in module.yaml's urlPathTemplate "
                "starts with www.",
                hint="name the www. host in urlPathTemplate (and in ALLOWED_HOSTS), or, if it "
                'does, silence this: SILENCED_SYSTEM_CHECKS = ["statefun.W005"]',
                id="statefun.W005",
            )
        )
    return messages


def check_ssl_redirect(
    app_configs: Optional[Sequence[AppConfig]] = None, **kwargs: Any
) -> list[CheckMessage]:
    """A deploy check: ``SECURE_SSL_REDIRECT`` (which Django's own deploy checks ask for)
    redirects a plain-http POST to the endpoint to https, unless ``SECURE_REDIRECT_EXEMPT``
    exempts its path, as ``SecurityMiddleware`` matches it (without the leading slash).

    ``SECURE_PROXY_SSL_HEADER`` does not change that for a runtime that reaches the app
    directly: Django takes a request without the proxy's header for what the server says,
    plain http, and redirects it; only a POST through the proxy, over https, is let through.
    """
    middleware = "django.middleware.security.SecurityMiddleware"
    if not settings.SECURE_SSL_REDIRECT or middleware not in settings.MIDDLEWARE:
        return []
    exempt = [re.compile(pattern) for pattern in settings.SECURE_REDIRECT_EXEMPT]
    proxy = _proxy_header()
    messages: list[CheckMessage] = []
    # as module.yaml names them, without the trailing slash
    for url in dict.fromkeys(path.rstrip("/") or "/" for path in _endpoint_paths()):
        if any(pattern.search(url.lstrip("/")) for pattern in exempt):
            continue
        pattern = f"^{re.escape(url.strip('/'))}/?$"
        exemption = f'SECURE_REDIRECT_EXEMPT = [r"{pattern}"]'
        if proxy is None:
            problem = (
                f"SECURE_SSL_REDIRECT redirects the runtime's POST to {url} over http with a "
                "301, which the runtime does not follow"
            )
            hint = (
                "point module.yaml's urlPathTemplate at https://, or exempt the endpoint: "
                + exemption
            )
        else:
            problem = (
                f"SECURE_SSL_REDIRECT redirects the runtime's POST to {url} with a 301, which "
                f"the runtime does not follow, unless it comes through the proxy over https "
                f"({proxy}, SECURE_PROXY_SSL_HEADER): a runtime that reaches the app directly "
                "(its address, not the proxy's, in urlPathTemplate) is redirected"
            )
            hint = (
                f"exempt the endpoint: {exemption}; if module.yaml's urlPathTemplate is the "
                'proxy\'s https:// URL, silence this: SILENCED_SYSTEM_CHECKS = ["statefun.W004"]'
            )
        messages.append(Warning(problem, hint=hint, id="statefun.W004"))
    return messages


def _proxy_header() -> Optional[str]:
    """``SECURE_PROXY_SSL_HEADER`` as the proxy sends it (``X-Forwarded-Proto: https``)."""
    setting = settings.SECURE_PROXY_SSL_HEADER
    if not isinstance(setting, (tuple, list)) or len(setting) != 2:
        return None  # not set (or malformed: Django refuses it on every request)
    key, value = setting
    name = str(key).removeprefix("HTTP_").replace("_", "-").title()
    return f"{name}: {value}"
