"""Serve StateFun remote functions from a Django project.

::

    INSTALLED_APPS = [..., "statefun_django"]
    STATEFUN = {"FUNCTIONS": "proj.fns.functions"}

    # urls.py
    from statefun_django.urls import statefun_urls

    urlpatterns = [*statefun_urls("statefun")]

This module imports nothing of Django's beyond a check that it is installed, so that it can be
named in ``INSTALLED_APPS`` and loaded as a plugin before the settings are configured.
"""

from __future__ import annotations

from statefun_core.errors import IntegrationNotAvailableError

try:
    import django  # noqa: F401
except ImportError as _error:  # pragma: no cover - django is a dependency
    raise IntegrationNotAvailableError(
        "statefun_django needs Django: pip install statefun-django"
    ) from _error

__version__ = "0.1.0"
