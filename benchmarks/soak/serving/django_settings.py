SECRET_KEY = "soak"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "django_urls"
INSTALLED_APPS = ["statefun_django"]
STATEFUN = {"FUNCTIONS": "functions.functions"}
DATA_UPLOAD_MAX_MEMORY_SIZE = 32 * 1024 * 1024
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
USE_TZ = True
