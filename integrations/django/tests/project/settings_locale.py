"""The test project with LocaleMiddleware, a sync middleware that loads the URLconf (to look
for i18n_patterns) before the view is resolved: under ASGI, in a thread of sync_to_async."""

from .settings import *  # noqa: F403

MIDDLEWARE = ["django.middleware.locale.LocaleMiddleware", *MIDDLEWARE]  # noqa: F405
