"""The URL patterns of the endpoint and of the endpoints plugins contribute.

::

    # proj/urls.py
    from statefun_django.urls import statefun_urls

    urlpatterns = [*statefun_urls("statefun")]

serves the endpoint at ``/statefun`` and ``/statefun/`` (URL name ``statefun-endpoint``) and
each plugin endpoint under it (``/statefun/metrics`` for statefun-prometheus's ``/metrics``,
URL name ``statefun-metrics``).

``include("statefun_django.urls")`` serves the same under the namespace ``statefun``
(``statefun:endpoint``), the plugins' endpoints at ``<prefix>/metrics`` whether or not the
include's prefix ends in ``/``; Django then resolves every request twice, once for the include
and once inside it, which costs more than the rest of the integration together.

The plugins' endpoints are those of the handler built when the URLconf is loaded: none while
``STATEFUN`` is misconfigured (``manage.py check`` says why), as an error here would break
every URL of the project.
"""

from __future__ import annotations

import re

from django.urls import URLPattern, path, re_path

from statefun_core.errors import PluginError, UnknownTypeError
from statefun_core.plugins import Endpoint

from .conf import StatefunConfigError, get_handler, get_settings
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
    patterns = [path(prefix, view, name="statefun-endpoint"), path(f"{prefix}/", view)]
    for endpoint_path, endpoints in _plugin_endpoints().items():
        name = f"statefun-{endpoint_path.strip('/')}"
        view = plugin_endpoint_view(endpoints)
        patterns.append(path(f"{prefix}{endpoint_path}", view, name=name))
    return patterns


def _plugin_endpoints() -> dict[str, list[Endpoint]]:
    """The plugins' endpoints by path; none when ``STATEFUN["ENDPOINTS"]`` is off as the URLconf
    loads, so that the project's own routes at those paths are served (a setting turned off
    later: the views answer 404)."""
    try:
        endpoints = get_handler().endpoints if get_settings()["ENDPOINTS"] else ()
        if endpoints:  # one at the prefix itself would never be answered
            get_handler().check_endpoints_clear_of("/")
    except (StatefunConfigError, UnknownTypeError, PluginError):
        return {}  # the system checks report it (statefun.E001 to E006)
    by_path: dict[str, list[Endpoint]] = {}
    for endpoint in endpoints:
        by_path.setdefault(endpoint.path, []).append(endpoint)
    return by_path


#: What ``include("statefun_django.urls")`` serves: the same, relative to the include.
urlpatterns: list[URLPattern] = [path("", endpoint_view(), name="endpoint")]
# "(?:/)?": after a prefix with its trailing slash or without ("statefun", as module.yaml names
# the endpoint); the view refuses "/statefunmetrics". ("/?" would do, but Django warns of a
# pattern that starts with a slash, urls.W002.)
urlpatterns += [
    re_path(rf"^(?:/)?{re.escape(endpoint_path.lstrip('/'))}$", plugin_endpoint_view(endpoints))
    for endpoint_path, endpoints in _plugin_endpoints().items()
]
