"""Start ``tests.hardening.serve`` in a subprocess on 127.0.0.1 and talk raw HTTP to it; what a
soak run reads from it: the RSS and file descriptors of its processes, and the GC-tracked
objects of the one that serves."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from statefun_core import Limits
from statefun_core.testing import endpoint
from statefun_core.testing.endpoint import free_port

from .wire import counter_request

ROOT = Path(__file__).resolve().parents[2]
#: What tests.hardening.serve serves: each integration, Django both under WSGI and ASGI.
FRAMEWORKS = ("aiohttp", "tornado", "flask", "django", "django-asgi")
#: Every server tests.hardening.serve runs: the integrations (Flask and Django under gunicorn,
#: Django's ASGI under uvicorn), then the core's ASGI and WSGI applications and Flask under
#: other servers, then the settings docs/security.md names against slow clients.
SERVERS = (
    *FRAMEWORKS, "fastapi", "asgi-uvicorn", "wsgi-waitress", "wsgi-gunicorn", "flask-waitress",
    "wsgi-gunicorn-sync", "wsgi-waitress-timeout",
)  # fmt: skip


def function_path(server: str) -> str:
    """Where ``server`` answers: the core's applications at the root, a Starlette mount
    (FastAPI) with a trailing slash."""
    if server.startswith(("asgi-", "wsgi-")):
        return "/"
    return "/statefun/" if server == "fastapi" else "/statefun"


def objects_file(pid: int) -> Path:
    """Where serving process ``pid`` writes its GC-tracked objects on SIGUSR2."""
    return Path(tempfile.gettempdir()) / f"statefun-soak-objects-{pid}.txt"


class Server:
    def __init__(self, framework: str, process: subprocess.Popen[bytes], port: int) -> None:
        self.framework = framework
        self.process = process
        self.port = port
        self.path = function_path(framework)

    def pids(self) -> list[int]:
        """The server's process and its children (gunicorn's worker)."""
        import psutil

        parent = psutil.Process(self.process.pid)
        return [parent.pid, *(child.pid for child in parent.children(recursive=True))]

    def fds(self) -> int:
        return sum(len(os.listdir(f"/proc/{pid}/fd")) for pid in self.pids())

    def objects(self) -> str:
        """The GC-tracked objects of each serving process: the one without children (gunicorn's
        worker, not its master, to which SIGUSR2 means "upgrade")."""
        import psutil

        counts = []
        for pid in self.pids():
            if psutil.Process(pid).children():
                continue
            path = objects_file(pid)
            path.unlink(missing_ok=True)
            os.kill(pid, signal.SIGUSR2)
            for _ in range(100):
                time.sleep(0.05)
                written = path.read_text() if path.exists() else ""
                if written.endswith("\n"):  # complete
                    counts.append(written.split(" ", 1)[0])
                    break
        return "+".join(counts) or "?"

    def rss(self) -> int:
        import psutil

        total = 0
        for pid in self.pids():
            with contextlib.suppress(psutil.NoSuchProcess):  # a worker that has just exited
                total += psutil.Process(pid).memory_info().rss
        return total

    def settled_rss(self) -> int:
        """``rss()`` once the server has answered a request. Gunicorn listens before it forks
        its worker: a baseline taken earlier misses the worker, whose birth then looks like
        growth (a fork starts with its parent's pages in its own RSS)."""
        status, _ = post(self.port, counter_request("settle", 1, 1), self.path)
        assert status == 200, status
        return self.rss()


@contextmanager
def running(
    framework: str,
    limits: Optional[Limits] = None,
    default_limits: bool = False,
    framework_limits: bool = True,
    installed_plugins: bool = False,
) -> Iterator[Server]:
    """The framework's server (one of ``SERVERS``) for the fuzz functions; ``limits`` for its
    handler, and the framework's own body limit set alike unless ``framework_limits`` is false;
    with ``installed_plugins``, the plugins installed (statefun-prometheus' metrics, the
    OpenTelemetry SDK's spans for statefun-opentelemetry) rather than none."""
    env = dict(os.environ)
    env["HARDENING_PLUGINS"] = "installed" if installed_plugins else ""
    env.pop("HARDENING_LIMITS", None)
    env["HARDENING_FRAMEWORK_LIMITS"] = "1" if framework_limits else "0"
    if default_limits:
        env["HARDENING_LIMITS"] = "default"
    elif limits is not None:
        env["HARDENING_LIMITS"] = json.dumps(limits.__dict__)
    port = free_port()
    command = [sys.executable, "-m", "tests.hardening.serve", framework, str(port)]
    with endpoint.running(command, port, cwd=ROOT, env=env) as process:
        yield Server(framework, process, port)


def raw_request(
    port: int, head: bytes, body: bytes = b"", timeout: float = 30
) -> tuple[int, bytes]:
    """Send ``head`` (request line and headers, without the blank line) and ``body`` on a new
    connection; return the final status and the raw response after the status line.

    The body is sent from another thread while the response is read, as an HTTP client does:
    a server that answers early (413) and closes with the body unread resets the connection,
    and a response still unread when the reset arrives is lost."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:

        def send() -> None:
            with contextlib.suppress(OSError):  # the server answered and closed: a broken pipe
                sock.sendall(head + b"\r\n\r\n" + body)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        sender.join(timeout)
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
