"""The URLconf a project gets from ``path("statefun/", include(...))``: /statefun/ only."""

from django.urls import include, path

urlpatterns = [path("statefun/", include("statefun_django.urls"))]
