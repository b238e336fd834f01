"""``manage.py statefun_serve``: a development server that says what it serves, and where."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.core.servers.basehttp import get_internal_wsgi_application, run

from ...conf import endpoint_path, get_handler


class Command(BaseCommand):
    help = "Serve the STATEFUN functions for development (threaded WSGI, like runserver)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        handler = get_handler()
        path = endpoint_path() or "/<route statefun_urls() in your URLconf>"
        for function in handler.functions:
            self.stdout.write(f"{function.typename}  ->  http://{host}:{port}{path}")
        run(host, port, get_internal_wsgi_application(), threading=True)
