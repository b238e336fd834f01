"""The statefun-local benchmark still runs, at its smallest: a bench no test runs rots."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "local" / "bench.py"


@pytest.mark.skipif(not BENCH.exists(), reason="runs from a checkout of the repository")
def test_the_benchmark_delivers_every_greeting_twice() -> None:
    command = [sys.executable, str(BENCH), "--addresses", "5", "--per-address", "3",
               "--rounds", "1", "--latency-samples", "3", "--timeout", "60"]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    # the bench raises unless each greeting made two deliveries (greeter, inbox)
    assert "batching (3 messages/address queued): 30 deliveries" in run.stdout, output
    assert "no batching (1 rounds of 1 message/address): 10 deliveries" in run.stdout, output
    assert "latency ingress -> egress" in run.stdout, output
