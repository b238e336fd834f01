from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
sys.modules["opentelemetry"] = None  # as if opentelemetry were not installed
from statefun_core.errors import IntegrationNotAvailableError
try:
    import statefun_opentelemetry
except IntegrationNotAvailableError as error:
    print(error)
"""


def test_importing_without_opentelemetry_names_the_package_to_install() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True
    )
    assert "pip install statefun-opentelemetry" in done.stdout
