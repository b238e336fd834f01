"""A minimal project serving the user guide's greeter at /statefun."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # examples/, for greeter_functions

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "only-for-the-example")
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = ["statefun_django"]
MIDDLEWARE = ["statefun_django.middleware.statefun_middleware"]
ROOT_URLCONF = "greeter_project.urls"
WSGI_APPLICATION = "greeter_project.wsgi.application"

STATEFUN = {"FUNCTIONS": "greeter_functions.functions"}
# The runtime batches invocations and sends the state with them: allow large bodies.
DATA_UPLOAD_MAX_MEMORY_SIZE = 32 * 1024 * 1024
