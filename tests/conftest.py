"""Settings and fixtures shared by the test folders under tests/."""

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

# CI machines are small and shared: judge properties by their examples, never by their speed.
settings.register_profile(
    "statefun", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=100
)
settings.load_profile("statefun")


def pytest_report_header() -> str:
    from .compiled import COMPILED

    return f"statefun_core: {'compiled by mypyc' if COMPILED else 'Python'}"


@pytest.fixture
def factory_trace_id() -> Iterator[str]:
    """A record factory that sets ``trace_id`` on every record, as a common recipe for trace
    ids in logs does; the value it sets. The standard one is back after the test."""
    standard = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = standard(*args, **kwargs)
        record.trace_id = "from-the-factory"
        return record

    logging.setLogRecordFactory(factory)
    try:
        yield "from-the-factory"
    finally:
        logging.setLogRecordFactory(standard)
