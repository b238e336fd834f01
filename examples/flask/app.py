"""The user guide's greeter served by Flask at http://127.0.0.1:$PORT/statefun (default 8000).

    pip install -e . -e integrations/flask gunicorn   # from the repository root
    gunicorn --chdir examples/flask -b 127.0.0.1:${PORT:-8000} app:app

Point a StateFun endpoint (``urlPathTemplate: http://127.0.0.1:8000/statefun``) at it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from flask import Flask
from statefun_flask import Statefun

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # examples/, for the functions
from greeter_functions import functions

app = Flask(__name__)
Statefun(app, functions)  # POST /statefun; GET /metrics with statefun-prometheus

if __name__ == "__main__":  # Flask's development server
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
