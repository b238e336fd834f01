"""Start ``tests.hardening.serve`` in a subprocess on 127.0.0.1 and talk raw HTTP to it."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from statefun_core import Limits

ROOT = Path(__file__).resolve().parents[2]
#: What tests.hardening.serve serves: each integration, Django both under WSGI and ASGI.
FRAMEWORKS = ("aiohttp", "tornado", "flask", "django", "django-asgi")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, framework: str, process: subprocess.Popen[bytes], port: int) -> None:
        self.framework = framework
        self.process = process
        self.port = port

    def pids(self) -> list[int]:
        """The server's process and its children (gunicorn's worker)."""
        import psutil

        parent = psutil.Process(self.process.pid)
        return [parent.pid, *(child.pid for child in parent.children(recursive=True))]

    def rss(self) -> int:
        import psutil

        total = 0
        for pid in self.pids():
            with contextlib.suppress(psutil.NoSuchProcess):  # a worker that has just exited
                total += psutil.Process(pid).memory_info().rss
        return total


@contextmanager
def running(
    framework: str,
    limits: Optional[Limits] = None,
    default_limits: bool = False,
    framework_limits: bool = True,
) -> Iterator[Server]:
    """The framework's server for the fuzz functions; ``limits`` for its handler, and the
    framework's own body limit set alike unless ``framework_limits`` is false."""
    env = dict(os.environ)
    env.pop("HARDENING_LIMITS", None)
    env["HARDENING_FRAMEWORK_LIMITS"] = "1" if framework_limits else "0"
    if default_limits:
        env["HARDENING_LIMITS"] = "default"
    elif limits is not None:
        env["HARDENING_LIMITS"] = json.dumps(limits.__dict__)
    port = free_port()
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed below); not a pipe: a full pipe would stall the server's logging
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.hardening.serve", framework, str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                log.seek(0)
                error = log.read().decode(errors="replace")
                raise RuntimeError(f"{framework} exited with {process.returncode}:\n{error}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{framework} did not listen within 30 s") from None
                time.sleep(0.05)
        yield Server(framework, process, port)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def raw_request(
    port: int, head: bytes, body: bytes = b"", timeout: float = 30
) -> tuple[int, bytes]:
    """Send ``head`` (request line and headers, without the blank line) and ``body`` on a new
    connection; return the final status and the raw response after the status line."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        # the server may answer (413) and close before it has read everything
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head + b"\r\n\r\n" + body)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    response = b"".join(chunks)
    while response.startswith(b"HTTP/1.1 100"):
        response = response.split(b"\r\n\r\n", 1)[1]
    status_line, _, rest = response.partition(b"\r\n")
    parts = status_line.split()
    if len(parts) < 2 or not parts[1].isdigit():
        raise AssertionError(f"no HTTP response: {response[:200]!r}")
    return int(parts[1]), rest


def post(port: int, body: bytes, path: str = "/statefun", headers: str = "") -> tuple[int, bytes]:
    """A well-formed POST; returns the status and the body."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {len(body)}{headers}"
    ).encode()
    status, rest = raw_request(port, head, body)
    return status, body_of(rest)


def body_of(rest: bytes) -> bytes:
    headers, _, body = rest.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in headers.lower():
        out = bytearray()
        while body:
            size_line, _, body = body.partition(b"\r\n")
            size = int(size_line.split(b";")[0] or b"0", 16)
            if size == 0:
                break
            out += body[:size]
            body = body[size + 2 :]
        return bytes(out)
    return body
