"""The URLconf a project gets from ``path("statefun", include(...))``: /statefun, and the
plugins' endpoints at /statefun/<path>, beside a route of the project's own."""

from django.urls import include, path

from .urls_flat import own

urlpatterns = [path("statefun", include("statefun_django.urls")), path("statefunny", own)]
