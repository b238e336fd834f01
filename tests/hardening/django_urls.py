"""The URLconf of the hardening tests' Django server: the endpoint at /statefun."""

from django.urls import include, path

urlpatterns = [path("statefun", include("statefun_django.urls"))]
