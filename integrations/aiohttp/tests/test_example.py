"""examples/aiohttp/app.py runs and serves the guide's greeter on $PORT."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from statefun_core.testing import wire

from .functions import GREETER, INBOX, greetings

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "aiohttp" / "app.py"


@pytest.mark.skipif(not EXAMPLE.exists(), reason="runs from a checkout of the repository")
def test_example_serves_the_greeter() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, str(EXAMPLE)], env={**os.environ, "PORT": str(port)})
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/statefun",
            data=wire.to_function(GREETER, "Ann", ["Ann"], {"seen_count": 1}),
            method="POST",
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    reply = response.read()
                break
            except (ConnectionError, urllib.error.URLError):
                assert server.poll() is None, "the example exited"
                assert time.monotonic() < deadline, "the example did not start"
                time.sleep(0.1)
        assert greetings(reply) == (2, [(INBOX, "Ann", "Hello Ann for the 1th time!")])
    finally:
        server.terminate()
        server.wait()
