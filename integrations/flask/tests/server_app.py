"""The app the server tests run under gunicorn: ``gunicorn tests.server_app:app``."""

from flask import Flask
from statefun_flask import Statefun

from statefun_core.testing.endpoint import make_functions

LIMIT = 64 * 1024

app = Flask(__name__)
app.config["MAX_CONTENT_LENGTH"] = LIMIT
Statefun(app, make_functions())


@app.get("/plain")
def plain() -> str:
    """A URL of the application's own, whose 405 stays Flask's."""
    return "plain"


#: No MAX_CONTENT_LENGTH: the handler's Limits.request_bytes (32 MiB by default) is the limit.
unlimited = Flask("unlimited")
Statefun(unlimited, make_functions())
