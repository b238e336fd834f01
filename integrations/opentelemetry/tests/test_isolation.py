"""A plugin raising after the tracing plugin attached its context leaves no context behind."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from statefun_opentelemetry import OpenTelemetryPlugin

from statefun_core import RequestReplyHandler
from statefun_core.plugins import make_plugin_manager
from statefun_core.testing import wire
from statefun_core.testing.packaging import install_distribution

from .test_opentelemetry_plugin import GREETER, SEEN_2, make_functions

RAISING = """
from statefun_core.plugins import hookimpl

@hookimpl(trylast=True)  # after the tracing plugin made its span current
def statefun_invocation_started(invocation):
    raise RuntimeError("broken after the span was attached")

@hookimpl(tryfirst=True)  # before the tracing plugin ends its span
def statefun_invocation_finished(invocation, error):
    raise RuntimeError("broken before the span is detached")

@hookimpl(tryfirst=True)
def statefun_batch_finished(batch):
    raise RuntimeError("broken before the batch span ends")
"""


@pytest.fixture
def broken_plugin_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.syspath_prepend(str(tmp_path))
    install_distribution(
        tmp_path, "fake-broken", {"broken": "fake_broken"}, {"fake_broken": RAISING}
    )
    yield
    sys.modules.pop("fake_broken", None)


@pytest.mark.parametrize("driver", ["handle_sync", "handle_async"])
def test_later_requests_traces_are_clean_after_a_raising_plugin(
    broken_plugin_installed: None, driver: str, caplog: pytest.LogCaptureFixture
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    # the installed entry point's instance (global provider) stays out: one tracing plugin
    plugins = make_plugin_manager(
        [OpenTelemetryPlugin(tracer_provider=provider)], blocked=["opentelemetry"]
    )
    assert plugins.has_plugin("broken")
    handler = RequestReplyHandler(make_functions(provider.get_tracer("test")), plugins=plugins)
    body = wire.to_function(GREETER, "ann", ["ann"], SEEN_2)

    for _ in range(3):
        if driver == "handle_sync":
            reply = handler.handle_sync(body)
        else:
            import asyncio

            reply = asyncio.run(handler.handle_async(body))
        assert wire.invocation_result(reply).state_mutations
        assert not trace.get_current_span().get_span_context().is_valid

    finished = exporter.get_finished_spans()
    batches = [s for s in finished if s.name == f"process {GREETER}" and s.parent is None]
    assert len(batches) == 3
    assert len({span.context.trace_id for span in batches}) == 3  # three traces, none nested
    assert "plugin 'broken' raised in statefun_invocation_started" in caplog.text
    provider.shutdown()
