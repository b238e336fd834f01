"""The Django project of the HTTP benchmark: ``django_app:application`` for gunicorn, or with
``BENCH_ASGI=1`` for uvicorn (async views throughout, the integration's async view).

``BENCH_KIND=statefun`` serves the user guide's greeter through statefun_django, routed with
``statefun_urls`` as its README says; ``BENCH_KIND=bare`` is the floor: a plain function view
reading the body and answering fixed bytes (hex in ``BENCH_FIXED_REPLY``);
``BENCH_KIND=handler`` is a plain view calling
``handle_sync``, to tell the core's cost from ours; ``BENCH_KIND=floor`` is a plain view
answering with the core benchmark's hand-written protobuf greeter (``benchmarks/core/floor.py``),
no SDK at all. All have the same settings, no middleware.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import django
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from statefun_core import CONTENT_TYPE, RequestReplyHandler

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "examples"), str(ROOT / "benchmarks")]

KIND = os.environ["BENCH_KIND"]
ASGI = os.environ.get("BENCH_ASGI") == "1"

settings.configure(
    DEBUG=False,
    SECRET_KEY="benchmark",
    ALLOWED_HOSTS=["*"],
    INSTALLED_APPS=["statefun_django"],
    MIDDLEWARE=[],
    ROOT_URLCONF=__name__,
    STATEFUN={"FUNCTIONS": "greeter_functions.functions", "ASYNC": ASGI},
)
django.setup()

from django.core.asgi import get_asgi_application  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

if KIND == "statefun":
    from statefun_django.urls import statefun_urls

    urlpatterns = statefun_urls("statefun")
elif KIND == "handler":
    from greeter_functions import functions

    handler = RequestReplyHandler(functions)

    @csrf_exempt
    def by_hand(request: HttpRequest) -> HttpResponse:
        return HttpResponse(handler.handle_sync(request.body), content_type=CONTENT_TYPE)

    @csrf_exempt
    async def by_hand_async(request: HttpRequest) -> HttpResponse:
        reply = await handler.handle_async(request.body)
        return HttpResponse(reply, content_type=CONTENT_TYPE)

    urlpatterns = [path("statefun", by_hand_async if ASGI else by_hand)]
elif KIND == "floor":
    from core.floor import Floor

    floor = Floor(ROOT / "statefun_core" / "protocol" / "statefun.desc")

    @csrf_exempt
    def hand_written(request: HttpRequest) -> HttpResponse:
        return HttpResponse(floor.handle_sync(request.body), content_type=CONTENT_TYPE)

    @csrf_exempt
    async def hand_written_async(request: HttpRequest) -> HttpResponse:
        reply = await floor.handle_async(request.body)
        return HttpResponse(reply, content_type=CONTENT_TYPE)

    urlpatterns = [path("statefun", hand_written_async if ASGI else hand_written)]
else:
    fixed_reply = bytes.fromhex(os.environ["BENCH_FIXED_REPLY"])

    @csrf_exempt
    def bare(request: HttpRequest) -> HttpResponse:
        request.body  # noqa: B018 - read it, as the endpoint does
        return HttpResponse(fixed_reply, content_type=CONTENT_TYPE)

    @csrf_exempt
    async def bare_async(request: HttpRequest) -> HttpResponse:
        request.body  # noqa: B018 - read it, as the endpoint does
        return HttpResponse(fixed_reply, content_type=CONTENT_TYPE)

    urlpatterns = [path("statefun", bare_async if ASGI else bare)]

application = get_asgi_application() if ASGI else get_wsgi_application()
