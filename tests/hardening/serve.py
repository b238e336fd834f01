"""Serve ``fuzz_target.FUNCTIONS`` with one integration on a real server, in this process.

``python -m tests.hardening.serve FRAMEWORK PORT`` from the repository root. The handler's
limits come from ``HARDENING_LIMITS`` (JSON of ``Limits`` fields; unset: ``fuzz_target.LIMITS``,
``"default"``: the SDK's defaults), and the framework's own body limit is set to the same
``request_bytes``. Flask and Django run under gunicorn (gthread workers), aiohttp and Tornado
on their own servers, Django's async view (``django-asgi``) under uvicorn; ``fastapi`` is
``statefun_core.asgi.StatefunASGI`` mounted at ``/statefun`` in FastAPI, under uvicorn (its URL
ends in a slash: ``/statefun/``). The rest of ``servers.SERVERS`` serve at the root:
``asgi-uvicorn`` is ``StatefunASGI`` under uvicorn, ``wsgi-waitress`` and ``wsgi-gunicorn``
``statefun_core.wsgi.StatefunWSGI`` under waitress and gunicorn, ``flask-waitress`` Flask under
waitress; ``wsgi-gunicorn-sync`` and ``wsgi-waitress-timeout`` are StatefunWSGI under the
settings docs/security.md names against slow clients.

``SERVE_FUNCTIONS=module:name`` serves those functions instead, through a handler with the
installed plugins (the e2e suite's application); ``HARDENING_PLUGINS=installed`` serves the
fuzz functions so, with the OpenTelemetry SDK as the tracer provider (for the soak runs).
On SIGUSR2 a serving process writes its count of GC-tracked objects and their commonest types
to ``servers.objects_file(pid)``.
"""

from __future__ import annotations

import collections
import gc
import importlib
import json
import logging
import os
import signal
import sys
from types import FrameType
from typing import Any, Optional

from statefun_core import Limits, RequestReplyHandler
from statefun_core.http import DEFAULT_MAX_REQUEST_BYTES

from . import fuzz_target
from .fuzz_target import FUNCTIONS, LIMITS, make_handler
from .servers import SERVERS, objects_file

PATH = "/statefun"


def limits() -> Limits:
    setting = os.environ.get("HARDENING_LIMITS")
    if setting is None:
        return LIMITS
    if setting == "default":
        return Limits()
    return Limits(**json.loads(setting))


LIMITS_IN_FORCE = limits()
BODY_LIMIT = LIMITS_IN_FORCE.request_bytes or DEFAULT_MAX_REQUEST_BYTES
#: HARDENING_FRAMEWORK_LIMITS=0 leaves each framework's own body limit at its default.
FRAMEWORK_LIMITS = os.environ.get("HARDENING_FRAMEWORK_LIMITS", "1") == "1"


def handler() -> RequestReplyHandler:
    served = os.environ.get("SERVE_FUNCTIONS")
    if os.environ.get("HARDENING_PLUGINS") == "installed":
        trace_with_the_sdk()
        # the soak's deliberate failures would log a traceback each
        logging.getLogger("statefun_core").setLevel(logging.CRITICAL)
        return RequestReplyHandler(FUNCTIONS, limits=LIMITS_IN_FORCE)
    if served is None:
        return make_handler(LIMITS_IN_FORCE)
    module, _, name = served.partition(":")
    functions = getattr(importlib.import_module(module), name)
    return RequestReplyHandler(functions, limits=LIMITS_IN_FORCE)


def trace_with_the_sdk() -> None:
    """The OpenTelemetry SDK as the tracer provider, its spans dropped at export: so
    statefun-opentelemetry does its full work on every request."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    class Dropping(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Dropping()))
    trace.set_tracer_provider(provider)


def dump_objects(signum: int, frame: Optional[FrameType]) -> None:
    gc.collect()
    objects = gc.get_objects()
    common = collections.Counter(type(o).__name__ for o in objects).most_common(12)
    objects_file(os.getpid()).write_text(f"{len(objects)} {common}\n")


# A server checks no reply in its own process: keep no record of what the functions raised,
# which would grow by an exception and its traceback with every failed request.
fuzz_target.RAISED = collections.deque(maxlen=0)
HANDLER = handler()


def serve_aiohttp(port: int) -> None:
    from aiohttp import web
    from statefun_aiohttp import setup

    app = web.Application(client_max_size=BODY_LIMIT) if FRAMEWORK_LIMITS else web.Application()
    setup(app, HANDLER, path=PATH)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None,
                ssl_context=mutual_tls())  # fmt: skip


def mutual_tls() -> Any:
    """With ``SERVE_TLS=<directory>``: HTTPS with ``server.pem`` (certificate and key),
    requiring a client certificate signed by ``ca.pem``; else None (plain HTTP)."""
    directory = os.environ.get("SERVE_TLS")
    if directory is None:
        return None
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=f"{directory}/ca.pem")
    context.load_cert_chain(f"{directory}/server.pem")
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def serve_tornado(port: int) -> None:
    import asyncio

    from statefun_tornado import make_app

    async def main() -> None:
        options: dict[str, Any] = {"max_body_size": BODY_LIMIT} if FRAMEWORK_LIMITS else {}
        make_app(HANDLER, PATH, **options).listen(port, "127.0.0.1")
        await asyncio.Event().wait()

    asyncio.run(main())


def flask_app() -> Any:
    from flask import Flask
    from statefun_flask import Statefun

    app = Flask("hardening")
    if FRAMEWORK_LIMITS:
        app.config["MAX_CONTENT_LENGTH"] = BODY_LIMIT
    Statefun(app, HANDLER)
    return app


def django_app(asgi: bool = False) -> Any:
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY="hardening",
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        INSTALLED_APPS=["statefun_django"],
        MIDDLEWARE=[
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "statefun_django.middleware.statefun_middleware",
        ],
        ROOT_URLCONF="tests.hardening.django_urls",
        STATEFUN={"FUNCTIONS": "tests.hardening.fuzz_target.FUNCTIONS", "ASYNC": asgi},
        LOGGING_CONFIG=None,
        **({"DATA_UPLOAD_MAX_MEMORY_SIZE": BODY_LIMIT} if FRAMEWORK_LIMITS else {}),
    )
    django.setup()
    # statefun-django builds its handler with the default Limits and has no setting for them;
    # serve ours so that the same limits apply behind every framework.
    from statefun_django import views

    views.get_handler = lambda: HANDLER  # type: ignore[attr-defined,assignment]
    if asgi:
        from django.core.asgi import get_asgi_application

        return get_asgi_application()
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def serve_wsgi(app: Any, port: int, sync: bool = False) -> None:
    """``app`` under gunicorn: one gthread worker, or with ``sync`` one sync worker whose
    request must finish within 10 s."""
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            options = {
                "bind": f"127.0.0.1:{port}", "workers": 1, "worker_class": "gthread",
                "threads": 16, "loglevel": "warning", "accesslog": None, "graceful_timeout": 1,
            }  # fmt: skip
            if sync:
                options.update(worker_class="sync", timeout=10)
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            # in the worker, once gunicorn has reset its signals
            signal.signal(signal.SIGUSR2, dump_objects)
            return app

    Server().run()


def serve_waitress(app: Any, port: int, **options: Any) -> None:
    import waitress

    if FRAMEWORK_LIMITS:
        options["max_request_body_size"] = BODY_LIMIT
    waitress.serve(app, host="127.0.0.1", port=port, threads=4, _quiet=True, **options)


def wsgi_app() -> Any:
    from statefun_core.wsgi import StatefunWSGI

    return StatefunWSGI(HANDLER)


def serve_asgi(app: Any, port: int) -> None:
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                lifespan="off")  # fmt: skip


def fastapi_app() -> Any:
    from fastapi import FastAPI

    from statefun_core.asgi import StatefunASGI

    app = FastAPI()
    app.mount(PATH, StatefunASGI(HANDLER))
    return app


def main() -> None:
    framework, port = sys.argv[1], int(sys.argv[2])
    signal.signal(signal.SIGUSR2, dump_objects)
    if framework == "aiohttp":
        serve_aiohttp(port)
    elif framework == "tornado":
        serve_tornado(port)
    elif framework == "flask":
        serve_wsgi(flask_app(), port)
    elif framework == "django":
        serve_wsgi(django_app(), port)
    elif framework == "django-asgi":
        serve_asgi(django_app(asgi=True), port)
    elif framework == "fastapi":
        serve_asgi(fastapi_app(), port)
    elif framework == "asgi-uvicorn":
        from statefun_core.asgi import StatefunASGI

        serve_asgi(StatefunASGI(HANDLER), port)
    elif framework == "wsgi-waitress":
        serve_waitress(wsgi_app(), port)
    elif framework == "wsgi-waitress-timeout":
        serve_waitress(wsgi_app(), port, channel_timeout=10, cleanup_interval=5)
    elif framework == "wsgi-gunicorn":
        serve_wsgi(wsgi_app(), port)
    elif framework == "wsgi-gunicorn-sync":
        serve_wsgi(wsgi_app(), port, sync=True)
    elif framework == "flask-waitress":
        serve_waitress(flask_app(), port)
    else:
        raise SystemExit(f"unknown framework {framework!r}; one of {SERVERS}")


if __name__ == "__main__":
    main()
