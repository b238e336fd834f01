"""The real local runtime under random function failures and kill -9 (see smoke.py)."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from pathlib import Path

from .smoke import NEVER, run_smoke

SEED = int(os.environ.get("HARDENING_SMOKE_SEED", "20261129"))


def test_counts_exact_and_egress_once_under_failures_and_kills(tmp_path: Path) -> None:
    result = asyncio.run(run_smoke(tmp_path, SEED, waves=3, per_wave=40, failure_rate=0.1))
    print(result.summary())
    assert result.commands >= 300
    assert result.kills == 3
    assert result.killed_mid_flow >= 1  # a kill landed while work was pending
    assert result.injected_failures > 0  # the faults did happen
    assert result.counts == result.expected
    duplicated = [record for record, n in Counter(result.egress).items() if n > 1]
    assert not duplicated, duplicated[:10]
    assert sorted(result.egress) == sorted(result.expected_egress)
    assert not [record for record in result.egress if record.startswith(NEVER)]
