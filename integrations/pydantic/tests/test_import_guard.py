from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
sys.modules["pydantic"] = None  # as if pydantic were not installed
from statefun_core.errors import IntegrationNotAvailableError
try:
    import statefun_pydantic
except IntegrationNotAvailableError as error:
    print(error)
"""


def test_importing_without_pydantic_names_the_package_to_install() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True
    )
    assert "pip install statefun-pydantic" in done.stdout
