"""The test project: statefun_django installed and included at /statefun/."""

SECRET_KEY = "statefun-django-tests"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
USE_TZ = True

INSTALLED_APPS = ["statefun_django"]
MIDDLEWARE = [
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",  # the endpoint must be exempt
    "statefun_django.middleware.statefun_middleware",
]
ROOT_URLCONF = "tests.project.urls"
WSGI_APPLICATION = "tests.project.wsgi.application"

STATEFUN = {"FUNCTIONS": "tests.functions.functions"}
DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
