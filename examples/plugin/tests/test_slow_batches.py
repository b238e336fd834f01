from __future__ import annotations

import logging
import time
from decimal import Decimal

import pytest
import statefun_slow_batches

from statefun_core import (
    Context,
    Message,
    RequestReplyHandler,
    StatefulFunctions,
    ValueSpec,
    message_builder,
    protocol,
)
from statefun_core.plugins import make_plugin_manager


def make_handler() -> RequestReplyHandler:
    functions = StatefulFunctions()

    @functions.bind("bank/account", specs=[ValueSpec("balance", type=Decimal)])
    def account(context: Context, message: Message) -> None:
        amount = Decimal(message.as_string() or "0")
        if amount == Decimal("0.02"):
            time.sleep(0.02)
        context.storage.balance = (context.storage.balance or Decimal(0)) + amount
        context.send(message_builder("bank/audit", "all", value=amount))

    return RequestReplyHandler(functions, plugins=make_plugin_manager())  # loads entry points


def request(*amounts: str) -> bytes:
    out = protocol.ToFunction()
    batch = out.invocation
    batch.target.namespace, batch.target.type, batch.target.id = "bank", "account", "acc-1"
    state = batch.state.add(state_name="balance")
    state.state_value.typename = "example.types/decimal"
    state.state_value.has_value = True
    state.state_value.value = b"10.00"
    for amount in amounts:
        invocation = batch.invocations.add()
        invocation.argument.typename = "io.statefun.types/string"
        invocation.argument.has_value = True
        invocation.argument.value = b"\n" + bytes([len(amount)]) + amount.encode()
    data: bytes = out.SerializeToString()
    return data


def test_the_entry_point_loads_the_module() -> None:
    assert make_plugin_manager().get_plugin("slow-batches") is statefun_slow_batches


def test_decimal_is_a_type() -> None:
    reply = protocol.FromFunction.FromString(make_handler().handle_sync(request("0.5", "0.25")))
    (mutation,) = reply.invocation_result.state_mutations
    assert (mutation.state_value.typename, mutation.state_value.value) == (
        "example.types/decimal",
        b"10.75",
    )
    sent = [m.argument.value for m in reply.invocation_result.outgoing_messages]
    assert sent == [b"0.5", b"0.25"]


def test_a_slow_batch_is_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("STATEFUN_SLOW_BATCH_SECONDS", "0.01")
    with caplog.at_level(logging.WARNING, logger="statefun.slow_batches"):
        make_handler().handle_sync(request("0.01", "0.02", "0.03"))
    (record,) = caplog.records
    assert record.getMessage().startswith("slow batch: bank/account took ")
    assert "for 3 invocation(s) (outcome ok); the slowest was #1 at " in record.getMessage()


def test_a_batch_under_the_threshold_is_not_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("STATEFUN_SLOW_BATCH_SECONDS", "3600")
    with caplog.at_level(logging.WARNING, logger="statefun.slow_batches"):
        make_handler().handle_sync(request("0.01"))
    assert caplog.records == []


def test_the_reply_gets_a_server_timing_header() -> None:
    reply_headers: dict[str, str] = {}
    make_handler().handle_sync(request("0.02"), {}, reply_headers)
    (timing,) = reply_headers.values()
    assert list(reply_headers) == ["Server-Timing"] and timing.startswith("statefun;dur=")
    assert float(timing.split("=")[1]) >= 20.0  # the function sleeps 20 ms


def test_the_plugin_can_be_blocked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATEFUN_DISABLED_PLUGINS", "slow-batches")
    assert make_plugin_manager().get_plugin("slow-batches") is None
