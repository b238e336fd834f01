"""A short soak per integration: thousands of requests over hundreds of addresses from many
connections, every reply exact, no state crossing between requests, server memory flat."""

from __future__ import annotations

import asyncio
import os

import pytest

from .servers import FRAMEWORKS, running
from .soak import soak

SECONDS = float(os.environ.get("HARDENING_SOAK_SECONDS", "8"))
MiB = 1024 * 1024


@pytest.mark.parametrize("framework", list(FRAMEWORKS))
def test_soak(framework: str) -> None:
    with running(framework) as server:
        result = asyncio.run(soak(server, SECONDS, addresses=300, connections=32))
        assert server.process.poll() is None
    print(result.summary())
    assert not result.errors, result.errors[:5]
    assert result.requests >= 500  # enough to mean something on a slow machine
    # generous: allocator noise is a few MiB; a leak of a reply per request would be far more
    assert result.growth() < 24 * MiB, result.summary()
