"""examples/tornado/app.py runs and serves the guide's greeter on $PORT."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from statefun_core.testing import wire
from statefun_core.testing.endpoint import GREETER, INBOX, free_port, greetings, request, running

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "tornado" / "app.py"


@pytest.mark.skipif(not EXAMPLE.exists(), reason="runs from a checkout of the repository")
def test_example_serves_the_greeter() -> None:
    port = free_port()
    with running([sys.executable, str(EXAMPLE)], port, env={**os.environ, "PORT": str(port)}):
        body = wire.to_function(GREETER, "Ann", ["Ann"], {"seen_count": 1})
        status, _, reply = request(port, "/statefun", body)
    assert status == 200
    assert greetings(reply) == (2, [(INBOX, "Ann", "Hello Ann for the 1th time!")])
