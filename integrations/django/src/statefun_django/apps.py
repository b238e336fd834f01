"""The Django application: ``"statefun_django"`` in ``INSTALLED_APPS`` (label ``statefun``)."""

from __future__ import annotations

from django.apps import AppConfig
from django.core import checks


class StatefunConfig(AppConfig):
    name = "statefun_django"
    label = "statefun"
    verbose_name = "StateFun"

    def ready(self) -> None:
        from .checks import check_settings, check_urls

        checks.register(check_settings, "statefun")
        checks.register(check_urls, "statefun", checks.Tags.urls)
