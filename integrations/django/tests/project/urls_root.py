"""An include at the project's root, beside the project's own route at a plugin's path."""

from django.urls import include, path

from .urls_flat import own

urlpatterns = [path("", include("statefun_django.urls")), path("slow-batches", own)]
