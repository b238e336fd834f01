"""What every Kafka and Kinesis connector shares: a failure is shown, and tried again."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from statefun_local.connector import Connector


class Failing(Connector):
    system, kind = "kafka", "egress"

    def __init__(self, error: Exception) -> None:
        super().__init__(runtime=None, id_="com.example/out", address="broker:9092")  # type: ignore[arg-type]
        self.failure = error
        self.attempts = 0

    async def _run(self) -> None:
        self.attempts += 1
        raise self.failure


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        (TimeoutError(), "TimeoutError (no detail)"),  # concurrent.futures' own say nothing
        (OSError("no route to host"), "OSError: no route to host"),
    ],
)
def test_a_failure_is_shown_and_the_connector_starts_again(
    error: Exception, shown: str, caplog: Any
) -> None:
    connector = Failing(error)

    async def scenario() -> None:
        task = asyncio.ensure_future(connector.run())
        await asyncio.sleep(0.1)  # the first attempt, then a backoff of 1 s
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert (connector.state, connector.error, connector.attempts) == ("failed", shown, 1)
    assert f"kafka egress com.example/out: {shown}; starting again in 1 s" in caplog.text
