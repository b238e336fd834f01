"""The test project serving a blocking function that waits for a test to let it end, the log
of ``statefun_core`` going to the file ``STATEFUN_TEST_LOG`` names."""

import os

from .settings import *  # noqa: F403

STATEFUN = {"FUNCTIONS": "tests.functions.slow"}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {
        "file": {"class": "logging.FileHandler", "filename": os.environ["STATEFUN_TEST_LOG"]},
    },
    "loggers": {"statefun_core": {"handlers": ["file"], "level": "INFO"}},
}
