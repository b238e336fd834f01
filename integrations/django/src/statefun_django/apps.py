"""The Django application: ``"statefun_django"`` in ``INSTALLED_APPS`` (label ``statefun``)."""

from __future__ import annotations

import logging

from django.apps import AppConfig
from django.core import checks

logger: logging.Logger = logging.getLogger("statefun_django")


class StatefunConfig(AppConfig):
    name = "statefun_django"
    label = "statefun"
    verbose_name: str = "StateFun"

    def ready(self) -> None:
        from .checks import check_settings, check_ssl_redirect, check_urls
        from .conf import handler_error

        checks.register(check_settings, "statefun")
        checks.register(check_urls, "statefun", checks.Tags.urls)
        checks.register(check_ssl_redirect, "statefun", checks.Tags.security, deploy=True)
        # Built at start-up, so that a type no plugin resolves is reported now (and by
        # ``manage.py check``, statefun.E006), not by the first request.
        problem = handler_error()
        if problem is not None:
            logger.error("statefun: the handler cannot be built: %s", problem)
