"""The official SDK (apache-flink-statefun 3.3.0) in a virtualenv of its own, which the tests
that compare it with ours drive as a subprocess: it pins an old protobuf."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

VENV = Path(__file__).resolve().parents[1] / ".venv-official"
OFFICIAL = "apache-flink-statefun==3.3.0"
OFFICIAL_PYTHON = "3.11"  # the newest Python its protobuf pin (<4) still supports well


def official_python() -> str:
    """The official SDK's interpreter, made on first use (a venv with its own protobuf)."""
    configured = os.environ.get("STATEFUN_OFFICIAL_PYTHON")
    if configured:
        return configured
    python = VENV / "bin" / "python"
    marker = VENV / "installed.txt"
    if marker.exists() and marker.read_text() == OFFICIAL:
        return str(python)
    shutil.rmtree(VENV, ignore_errors=True)
    interpreter = shutil.which(f"python{OFFICIAL_PYTHON}") or sys.executable
    uv = shutil.which("uv")
    if uv:
        subprocess.run([uv, "venv", "-q", "-p", interpreter, str(VENV)], check=True)
        subprocess.run([uv, "pip", "install", "-q", "--python", str(python), OFFICIAL], check=True)
    else:
        subprocess.run([interpreter, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", OFFICIAL], check=True)
    marker.write_text(OFFICIAL)
    return str(python)


def run_official(arguments: list[str], stdin: str = "") -> str:
    """Run the official SDK's interpreter with ``arguments`` (in :func:`official_env`), two
    minutes at most; its stdout. When it fails or times out, the test fails with what it
    wrote to stderr."""
    command = [official_python(), *arguments]
    try:
        done = subprocess.run(
            command, input=stdin, capture_output=True, text=True, timeout=120, env=official_env()
        )
    except subprocess.TimeoutExpired as error:
        stderr = error.stderr or b""  # what it wrote so far: bytes, even with text=True
        if isinstance(stderr, bytes):
            stderr = stderr.decode(errors="replace")
        raise AssertionError(f"{command} timed out after 120 s; its stderr:\n{stderr}") from None
    if done.returncode != 0:
        raise AssertionError(f"{command} exited {done.returncode}; its stderr:\n{done.stderr}")
    return done.stdout


def official_env() -> dict[str, str]:
    """The environment to run the official SDK's interpreter in: ours without ``PYTHONPATH``.
    A run from a checkout puts statefun-compat's ``src`` there, and the official interpreter's
    ``import statefun`` would then find statefun-compat, not the official SDK."""
    return {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
