"""Run a real server in a subprocess on 127.0.0.1 and talk to it with http.client."""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def gunicorn(app: str, *options: str) -> Iterator[int]:
    """``gunicorn <app>`` on an ephemeral port of 127.0.0.1; yields the port."""
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", *options, app]
    with _running(command, port):
        yield port


@contextmanager
def _running(command: list[str], port: int) -> Iterator[None]:
    process = subprocess.Popen(
        command, cwd=PACKAGE_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        _wait_until_listening(process, port)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            process.kill()
            process.wait()


def _wait_until_listening(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode() if process.stdout else ""
            raise RuntimeError(f"the server exited with {process.returncode}:\n{output}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"the server did not listen on port {port} within 30 seconds")


def request(
    port: int, path: str, body: Optional[bytes] = None, method: str = "POST"
) -> tuple[int, dict[str, str], bytes]:
    """One request on a new connection: ``(status, headers as sent, body)``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Content-Type": "application/octet-stream"} if body is not None else {}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@contextmanager
def uvicorn(app: str, *options: str) -> Iterator[int]:
    """``uvicorn <app>`` on an ephemeral port of 127.0.0.1; yields the port."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port)]
    with _running([*command, *options, app], port):
        yield port


@contextmanager
def statefun_serve(settings: str) -> Iterator[int]:
    """``django-admin statefun_serve`` on an ephemeral port of 127.0.0.1; yields the port."""
    port = free_port()
    command = [sys.executable, "-m", "django", "statefun_serve", "--settings", settings]
    with _running([*command, "--host", "127.0.0.1", "--port", str(port)], port):
        yield port
