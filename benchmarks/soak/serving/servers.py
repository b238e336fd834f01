"""Each way to serve, started as its own process on 127.0.0.1 (from this checkout's sources),
and what a long run reads from it: RSS and file descriptors of its processes, and the
GC-tracked objects of the one that serves."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import psutil
from apps import objects_file

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
BIN = Path(sys.executable).parent
INTEGRATIONS = ("aiohttp", "flask", "django", "tornado", "prometheus", "opentelemetry")


def _gunicorn(*options: str) -> list[str]:
    return [str(BIN / "gunicorn"), *options, "-b", "127.0.0.1:{port}", "apps:app"]


def _waitress(*options: str) -> list[str]:
    return [str(BIN / "waitress-serve"), *options, "--listen=127.0.0.1:{port}", "apps:app"]


_UVICORN = [str(BIN / "uvicorn"), "--host", "127.0.0.1", "--port", "{port}", "--log-level"]
_UVICORN += ["warning", "apps:app"]
_GTHREAD = ("-k", "gthread", "--threads", "4", "-w", "1")

#: name: (command, the function endpoint's path, SOAK_APP)
SERVERS: dict[str, tuple[list[str], str, str]] = {
    "aiohttp": ([sys.executable, "serve.py", "aiohttp", "{port}"], "/statefun", ""),
    "tornado": ([sys.executable, "serve.py", "tornado", "{port}"], "/statefun", ""),
    "asgi-uvicorn": (_UVICORN, "/", "asgi"),
    "wsgi-waitress": (_waitress("--threads", "4"), "/", "wsgi"),
    "wsgi-gunicorn": (_gunicorn(*_GTHREAD), "/", "wsgi"),
    "flask-gunicorn": (_gunicorn(*_GTHREAD), "/statefun", "flask"),
    "flask-waitress": (_waitress("--threads", "4"), "/statefun", "flask"),
    "django-gunicorn": (_gunicorn(*_GTHREAD), "/statefun", "django"),
    "django-uvicorn": (_UVICORN, "/statefun", "django_asgi"),
    # the settings docs/security.md names against slow clients, to check them
    "wsgi-gunicorn-sync": (_gunicorn("-w", "1", "--timeout", "10"), "/", "wsgi"),
    "wsgi-waitress-timeout": (
        _waitress("--threads", "4", "--channel-timeout=10", "--cleanup-interval=5"),
        "/",
        "wsgi",
    ),
}


class Server:
    def __init__(self, name: str, process: subprocess.Popen[bytes], port: int) -> None:
        self.name, self.process, self.port = name, process, port
        self.path = SERVERS[name][1]

    def processes(self) -> list[psutil.Process]:
        root = psutil.Process(self.process.pid)
        return [root, *root.children(recursive=True)]

    def rss_mib(self) -> float:
        return sum(p.memory_info().rss for p in self.processes()) / 2**20

    def fds(self) -> int:
        return sum(len(os.listdir(f"/proc/{p.pid}/fd")) for p in self.processes())

    def objects(self) -> str:
        """The GC-tracked objects of each serving process (gunicorn's worker, not its master,
        to which SIGUSR2 means "upgrade")."""
        counts = []
        for process in self.processes():
            if process.children():
                continue
            path = objects_file(process.pid)
            if os.path.exists(path):
                os.remove(path)
            process.send_signal(signal.SIGUSR2)
            for _ in range(100):
                time.sleep(0.05)
                written = Path(path).read_text() if os.path.exists(path) else ""
                if written.endswith("\n"):  # complete
                    counts.append(written.split(" ", 1)[0])
                    break
        return "+".join(counts) or "?"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running(name: str, log_path: Path) -> Iterator[Server]:
    """The server ``name`` listening on a free port; stopped by its PID on the way out."""
    command, _, app = SERVERS[name]
    port = free_port()
    env = dict(os.environ)
    sources = [
        str(HERE),
        str(ROOT),
        *(str(ROOT / "integrations" / x / "src") for x in INTEGRATIONS),
    ]
    env["PYTHONPATH"] = os.pathsep.join(sources)
    env["SOAK_APP"] = app
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [part.format(port=port) for part in command],
            cwd=HERE,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start:\n{log_path.read_text()}") from None
                time.sleep(0.2)
        time.sleep(1)  # gunicorn listens before its worker is up
        yield Server(name, process, port)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
