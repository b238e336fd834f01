"""The Django project of the HTTP benchmark, for gunicorn: ``django_app:application``.

``BENCH_KIND=statefun`` serves the user guide's greeter through statefun_django (its include);
``BENCH_KIND=bare`` is the floor: a plain function view reading the body and answering fixed
bytes (hex in ``BENCH_FIXED_REPLY``); ``BENCH_KIND=handler`` is a plain view calling
``handle_sync``, to tell the core's cost from ours. All have the same settings, no middleware.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import django
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

from statefun_core import CONTENT_TYPE, RequestReplyHandler

KIND = os.environ["BENCH_KIND"]

settings.configure(
    DEBUG=False,
    SECRET_KEY="benchmark",
    ALLOWED_HOSTS=["*"],
    INSTALLED_APPS=["statefun_django"],
    MIDDLEWARE=[],
    ROOT_URLCONF=__name__,
    STATEFUN={"FUNCTIONS": "greeter_functions.functions", "ASYNC": False},
)
django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402

if KIND == "statefun":
    urlpatterns = [path("statefun/", include("statefun_django.urls"))]
elif KIND == "handler":
    from greeter_functions import functions

    handler = RequestReplyHandler(functions)

    @csrf_exempt
    def by_hand(request: HttpRequest) -> HttpResponse:
        return HttpResponse(handler.handle_sync(request.body), content_type=CONTENT_TYPE)

    urlpatterns = [path("statefun/", by_hand)]
else:
    fixed_reply = bytes.fromhex(os.environ["BENCH_FIXED_REPLY"])

    @csrf_exempt
    def bare(request: HttpRequest) -> HttpResponse:
        request.body  # noqa: B018 - read it, as the endpoint does
        return HttpResponse(fixed_reply, content_type=CONTENT_TYPE)

    urlpatterns = [path("statefun/", bare)]

application = get_wsgi_application()
