"""The Quick start: make a virtualenv, install the project into it, run the greeter demo.

Needs only Python 3.9+ and pip. The virtualenv is kept in .venv-demo/ and reused.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = ROOT / ".venv-demo"
PACKAGES = [".", "local", "integrations/aiohttp"]


def main() -> int:
    python = ENV / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    if not python.exists():
        print(f"creating a virtualenv in {ENV.name}/ ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(ENV)
    print("installing statefun-core, statefun-local and statefun-aiohttp ...", flush=True)
    editable = [arg for package in PACKAGES for arg in ("-e", str(ROOT / package))]
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *editable],
        check=True,
    )
    return subprocess.run([str(python), str(ROOT / "examples/greeter/demo.py")]).returncode


if __name__ == "__main__":
    sys.exit(main())
