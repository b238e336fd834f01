"""What every Kafka and Kinesis connector shares: a failure is shown, and tried again."""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import threading
from pathlib import Path
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


class Hanging(Connector):
    """A connector whose client call waits for ``answer`` (a broker that does not answer),
    then raises; it closes its client on the way out only if no call is left under way."""

    system, kind = "kafka", "ingress"

    def __init__(self, connected: bool = False) -> None:
        super().__init__(runtime=None, id_="com.example/in", address="broker:9092")  # type: ignore[arg-type]
        if connected:
            self.connected()
        self.answer = threading.Event()
        self.called = threading.Event()
        self.closed = False

    def _call(self) -> None:
        self.called.set()
        self.answer.wait()
        raise ConnectionError("the broker went away")

    async def _run(self) -> None:
        try:
            await self.blocking(self._call)
        finally:
            if await self.settle():
                self.closed = True


def test_a_stop_during_a_call_that_never_ends_waits_a_while_then_leaves_the_client_to_it(
    monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    """The stop goes on after ``SETTLE_WAIT`` without closing the client (its thread is still
    in it); what the call raises later is nobody's to see, and is not logged as unseen."""
    from statefun_local import connector as connector_module

    monkeypatch.setattr(connector_module, "SETTLE_WAIT", 0.2)
    connector = Hanging()

    async def scenario() -> None:
        task = asyncio.ensure_future(connector.run())
        await asyncio.to_thread(connector.called.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
        assert not connector.closed
        connector.answer.set()  # the call ends, raising, on this loop still
        for _ in range(100):
            await asyncio.sleep(0.01)
            if not any(t.name == str(connector) for t in threading.enumerate()):
                break

    asyncio.run(scenario())
    gc.collect()
    assert "stopped with a call to broker:9092 under way, left to end by itself" in caplog.text
    assert "never retrieved" not in caplog.text


def test_a_connected_connector_s_stop_waits_for_its_call_and_then_closes_its_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its broker answers: the call under way ends, however long past ``SETTLE_WAIT`` (a
    machine under load), and the client is closed (an ingress commits its last offsets)."""
    from statefun_local import connector as connector_module

    monkeypatch.setattr(connector_module, "SETTLE_WAIT", 0.05)
    connector = Hanging(connected=True)

    async def scenario() -> None:
        task = asyncio.ensure_future(connector.run())
        await asyncio.to_thread(connector.called.wait, 10)
        task.cancel()
        await asyncio.sleep(0.5)  # ten times SETTLE_WAIT
        assert not task.done()
        connector.answer.set()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
        assert connector.closed

    asyncio.run(scenario())


def test_a_call_that_never_ends_does_not_hold_up_the_process_exit(tmp_path: Path) -> None:
    """A process whose runtime stopped with a client call still under way exits (an executor's
    thread would be waited for at exit, for ever here)."""
    script = tmp_path / "stop.py"
    script.write_text(
        "import asyncio\n"
        "from statefun_local import connector\n"
        f"from {__name__} import Hanging\n"
        "connector.SETTLE_WAIT = 0.1\n"
        "async def main():\n"
        "    hanging = Hanging()\n"
        "    task = asyncio.ensure_future(hanging.run())\n"
        "    await asyncio.to_thread(hanging.called.wait, 10)\n"
        "    task.cancel()\n"
        "    await asyncio.gather(task, return_exceptions=True)\n"
        "    print('stopped', hanging.closed)\n"
        "asyncio.run(main())\n"
    )
    here = str(Path(__file__).parents[1])  # where ``tests`` is a package
    path = os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))
    process = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": path},
    )
    try:
        output, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"the process did not exit: {output.decode()}")
    assert process.returncode == 0, output.decode()
    assert output.decode().splitlines()[-1] == "stopped False"
