"""The URLconf of the hardening tests' Django server: the endpoint as the README routes it,
at /statefun and /statefun/, with the plugins' endpoints under the same include."""

from django.urls import include, re_path

urlpatterns = [re_path(r"^statefun/?", include("statefun_django.urls"))]
