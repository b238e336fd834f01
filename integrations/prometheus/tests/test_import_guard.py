from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
sys.modules["prometheus_client"] = None  # as if prometheus_client were not installed
from statefun_core.errors import IntegrationNotAvailableError
try:
    import statefun_prometheus
except IntegrationNotAvailableError as error:
    print(error)
"""


def test_importing_without_prometheus_client_names_the_package_to_install() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True
    )
    assert "pip install statefun-prometheus" in done.stdout
