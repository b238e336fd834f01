"""The application of each way to serve (``SOAK_APP`` picks the one bound to ``app``), all
serving :mod:`functions`. On SIGUSR2 a serving process writes its count of GC-tracked objects
and their commonest types to ``objects_file(pid)``: ``soak.py`` reads it to tell growth of
Python objects from growth of the allocator's pages."""

from __future__ import annotations

import collections
import gc
import os
import signal
import sys
import tempfile
from types import FrameType
from typing import Any, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from functions import functions

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_settings")


def aiohttp_app() -> Any:
    import statefun_aiohttp
    from aiohttp import web

    app = web.Application(client_max_size=32 * 1024 * 1024)
    statefun_aiohttp.setup(app, functions)
    return app


def tornado_app() -> Any:
    import statefun_tornado

    return statefun_tornado.make_app(functions)


def flask_app() -> Any:
    from flask import Flask
    from statefun_flask import Statefun

    app = Flask(__name__)
    Statefun(app, functions)
    return app


def django_app() -> Any:
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def django_asgi_app() -> Any:
    from django.core.asgi import get_asgi_application

    return get_asgi_application()


def asgi_app() -> Any:
    from statefun_core.asgi import StatefunASGI

    return StatefunASGI(functions)


def wsgi_app() -> Any:
    from statefun_core.wsgi import StatefunWSGI

    return StatefunWSGI(functions)


def objects_file(pid: int) -> str:
    return os.path.join(tempfile.gettempdir(), f"statefun-soak-objects-{pid}.txt")


def _dump_objects(signum: int, frame: Optional[FrameType]) -> None:
    gc.collect()
    objects = gc.get_objects()
    common = collections.Counter(type(o).__name__ for o in objects).most_common(12)
    with open(objects_file(os.getpid()), "w") as out:
        out.write(f"{len(objects)} {common}\n")


signal.signal(signal.SIGUSR2, _dump_objects)

if os.environ.get("SOAK_APP"):
    app = globals()[f"{os.environ['SOAK_APP']}_app"]()
