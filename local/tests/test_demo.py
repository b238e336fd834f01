"""The greeter demo (``examples/greeter/demo.py``) runs end to end and prints the greetings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[2] / "examples" / "greeter" / "demo.py"


@pytest.mark.skipif(not DEMO.exists(), reason="runs from a checkout of the repository")
def test_demo_prints_the_greetings_and_stops(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(DEMO), "--db", str(tmp_path / "greeter.db")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "egress com.example/greets (6 records)" in out
    for line in (
        "key=Ann  Hello Ann for the 2th time!",
        "key=Bob  Hello Bob for the 1th time!",
        "key=Cid  Hello Cid for the 0th time!",
    ):
        assert line in out
    assert "seen_count = 3 (io.statefun.types/int)" in out
    assert out.rstrip().endswith("stopped")
