"""``re_path(r"^statefun/?", include("statefun_django.urls"))``: the endpoint, and ``metrics`` when
statefun-prometheus is installed (URL names ``statefun:endpoint`` and ``statefun:metrics``)."""

from __future__ import annotations

from importlib.util import find_spec

from django.urls import URLPattern, path
from django.views.decorators.http import require_GET

from .conf import get_settings
from .views import endpoint_view, metrics_view

app_name = "statefun"

urlpatterns: list[URLPattern] = [path("", endpoint_view(), name="endpoint")]

if get_settings()["METRICS"] and find_spec("statefun_prometheus") is not None:
    urlpatterns.append(path("metrics", require_GET(metrics_view), name="metrics"))
