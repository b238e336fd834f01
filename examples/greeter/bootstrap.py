"""Run the greeter demo on a fresh clone with nothing but Python (3.9+) and pip:

    python examples/greeter/bootstrap.py

Creates ``.venv-demo`` at the repository root (once), installs statefun-core, statefun-local
and statefun-aiohttp from this checkout into it, and runs ``demo.py`` with it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-demo"


def main() -> int:
    python = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if not python.exists():
        print(f"creating {VENV} and installing the packages (once)...", flush=True)
        venv.create(VENV, with_pip=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-e",
                str(ROOT),
                "-e",
                str(ROOT / "local"),
                "-e",
                str(ROOT / "integrations/aiohttp"),
            ],
            check=True,
        )
    return subprocess.call([str(python), str(ROOT / "examples/greeter/demo.py"), *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
