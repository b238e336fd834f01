"""The URL patterns of the endpoint and of the endpoints plugins contribute.

::

    # proj/urls.py
    from statefun_django.urls import statefun_urls

    urlpatterns = [*statefun_urls("statefun")]

serves the endpoint at ``/statefun`` and ``/statefun/`` (URL name ``statefun-endpoint``) and
each plugin endpoint under it (``/statefun/metrics`` for statefun-prometheus's ``/metrics``).

``include("statefun_django.urls")`` serves the same under the namespace ``statefun``
(``statefun:endpoint``); Django then resolves every request twice, once for the include and
once inside it, which costs more than the rest of the integration together.
"""

from __future__ import annotations

from typing import Any, Callable

from django.urls import URLPattern, path

from statefun_core.plugins import Endpoint

from .conf import get_handler, get_settings
from .views import endpoint_view, plugin_endpoint_view

__all__ = ["statefun_urls", "urlpatterns"]

app_name = "statefun"


def statefun_urls(prefix: str = "statefun") -> list[URLPattern]:
    """Flat patterns for ``urlpatterns``: the endpoint at ``/<prefix>`` with or without the
    trailing slash (``module.yaml`` files name it without, and the runtime follows no
    redirect), and the plugins' endpoints at ``/<prefix><their path>``."""
    prefix = prefix.strip("/")
    if not prefix:
        raise ValueError("statefun_urls() needs a path to serve at, such as 'statefun'")
    view = endpoint_view()
    return [
        path(prefix, view, name="statefun-endpoint"),
        path(f"{prefix}/", view),
        *(path(f"{prefix}{endpoint.path}", served) for endpoint, served in _plugin_views()),
    ]


def _plugin_views() -> list[tuple[Endpoint, Callable[..., Any]]]:
    if not get_settings()["ENDPOINTS"]:
        return []
    return [(endpoint, plugin_endpoint_view(endpoint)) for endpoint in get_handler().endpoints]


#: What ``include("statefun_django.urls")`` serves: the same, relative to the include.
urlpatterns: list[URLPattern] = [
    path("", endpoint_view(), name="endpoint"),
    *(path(endpoint.path.lstrip("/"), view) for endpoint, view in _plugin_views()),
]
