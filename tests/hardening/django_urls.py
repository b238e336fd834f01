"""The URLconf of the hardening tests' Django server: the endpoint as the README routes it,
at /statefun and /statefun/, with the plugins' endpoints under it."""

from statefun_django.urls import statefun_urls

urlpatterns = [*statefun_urls("statefun")]
