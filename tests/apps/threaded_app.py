"""The WSGI application ``tests/apps/test_threaded.py`` serves under gunicorn (gthread) and
waitress: the functions of ``tests/core/threaded.py`` with the plugins a production server runs
(Prometheus, log context, health, dead letters), and a thread switch between almost any two
bytecodes, where a race between the server's threads would show."""

from __future__ import annotations

import sys

from prometheus_client import REGISTRY
from statefun_prometheus import PrometheusPlugin

from statefun_core.plugins import HealthEndpoints
from statefun_core.wsgi import StatefunWSGI
from tests.core.threaded import new_handler

sys.setswitchinterval(1e-6)
app = StatefunWSGI(new_handler(PrometheusPlugin(REGISTRY), HealthEndpoints()))
