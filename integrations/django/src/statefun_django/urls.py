"""``re_path(r"^statefun/?", include("statefun_django.urls"))``: the endpoint (URL name
``statefun:endpoint``), and each endpoint a plugin contributes under the same include, at its
path without the leading slash (``statefun/metrics`` for statefun-prometheus's ``/metrics``)."""

from __future__ import annotations

from django.urls import URLPattern, path

from .conf import get_handler, get_settings
from .views import endpoint_view, plugin_endpoint_view

app_name = "statefun"

urlpatterns: list[URLPattern] = [path("", endpoint_view(), name="endpoint")]

if get_settings()["ENDPOINTS"]:
    urlpatterns.extend(
        path(endpoint.path.lstrip("/"), plugin_endpoint_view(endpoint))
        for endpoint in get_handler().endpoints
    )
