"""Checks for a package that builds on statefun_core (an integration, a plugin).

::

    from statefun_core.testing.packaging import check_import_guard

    def test_import_without_aiohttp_says_what_to_install():
        check_import_guard("statefun_aiohttp", missing="aiohttp", distribution="statefun-aiohttp")
"""

from __future__ import annotations

import subprocess
import sys

__all__ = ["check_import_guard"]

_SCRIPT = """
import sys
sys.modules[{missing!r}] = None  # as if it were not installed
from statefun_core.errors import IntegrationNotAvailableError
try:
    import {package}
except IntegrationNotAvailableError as error:
    print(error)
else:
    raise SystemExit("{package} imported without {missing}")
"""


def check_import_guard(package: str, *, missing: str, distribution: str) -> None:
    """Importing ``package`` in a fresh interpreter where ``missing`` cannot be imported raises
    ``IntegrationNotAvailableError``, and its message says ``pip install <distribution>``."""
    script = _SCRIPT.format(package=package, missing=missing)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr or done.stdout
    assert f"pip install {distribution}" in done.stdout, done.stdout
