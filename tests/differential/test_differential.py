"""The differential test at CI size, and proof that it finds a difference and shrinks it.

``nox -s differential`` runs ``run.py`` itself (6,000 requests; ``-- --seeds 500 --requests
200`` for the long run); these tests run a few hundred requests under pytest.
"""

from __future__ import annotations

from typing import Any

import pytest

import statefun_core
from statefun_core import handler, protocol
from statefun_core.types import _WrapperSerializer

from .generator import DEVIATIONS
from .run import run


def test_the_official_sdk_and_ours_agree_apart_from_the_named_deviations() -> None:
    differential = run(first_seed=10_000, seeds=2, requests=150)
    assert [report for _, report in differential.differences] == []
    assert differential.requests == 300
    assert set(differential.deviations) <= set(DEVIATIONS)
    assert sum(differential.deviations.values()) > 0  # they are met, checked and counted


def test_a_difference_is_found_and_shrunk_to_a_reproduction(monkeypatch: Any, capsys: Any) -> None:
    # plant the old FloatType: float32 values packed with struct, -0.0 written, NaNs as they are
    old = _WrapperSerializer(protocol.FloatWrapper, 0x0D, "<f", 0.0)
    monkeypatch.setattr(statefun_core.FloatType, "_serializer", old)
    differential = run(first_seed=10_000, seeds=1, requests=150, max_differences=1)
    assert differential.differences
    case, report = differential.differences[0]
    commands = [command for invocation in case.invocations for command in invocation.program]
    assert len(case.invocations) == 1 and 1 <= len(commands) <= 2, report
    assert "seed 10000" in report and "request (base64)" in report
    assert "DIFFERENCE" in capsys.readouterr().out


def test_dead_lettered_invocations_leave_what_the_official_sdk_leaves_without_them() -> None:
    differential = run(first_seed=20_000, seeds=2, requests=150, dead_letters=True)
    assert [report for _, report in differential.differences] == []
    assert differential.requests == 300
    assert differential.dead_lettered > 100  # each one's record checked


def _rollback_of_written_only(storage: Any, saved: Any) -> None:
    written, _ = saved
    storage._written.clear()
    storage._written.update(written)


@pytest.mark.parametrize(
    "rollback",
    [lambda storage, saved: None, _rollback_of_written_only],
    ids=["no rollback", "decoded values not rolled back"],
)
def test_a_rollback_that_leaves_a_trace_is_found(monkeypatch: Any, rollback: Any) -> None:
    monkeypatch.setattr(handler, "rollback", rollback)
    differential = run(
        first_seed=20_000, seeds=1, requests=150, max_differences=1, dead_letters=True
    )
    assert differential.differences
    _, report = differential.differences[0]
    assert "without the invocations that raise" in report
