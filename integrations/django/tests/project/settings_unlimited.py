"""The test project without DATA_UPLOAD_MAX_MEMORY_SIZE: the handler's Limits.request_bytes
(64 KiB here) bounds the body."""

from .settings import *  # noqa: F403

DATA_UPLOAD_MAX_MEMORY_SIZE = None
STATEFUN = {"FUNCTIONS": "tests.functions.functions", "LIMITS": {"request_bytes": 64 * 1024}}
