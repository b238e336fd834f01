"""What statefun-local's Kafka and Kinesis connectors share: a state to show, a loop that starts
the client again with backoff whatever goes wrong, blocking client calls off the event loop, and
the way an ingress queues what it read (with its read position, in one SQLite transaction) and
the way an egress takes its records from the runtime's egress log."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Optional, Sequence, Union

from statefun_core.engine import Address, TraceContext, TypedValue

from .guard import one_line_logger
from .module import KAFKA_EGRESS, KAFKA_INGRESS, KINESIS_EGRESS, KINESIS_INGRESS, Egress, Ingress

if TYPE_CHECKING:
    from .runtime import LocalRuntime

log: logging.Logger = one_line_logger("statefun_local.connectors")

MAX_BACKOFF = 30.0
#: seconds a stopping connector that is not connected (its broker does not answer, say) waits
#: for a client call under way before it stops without closing that client, the call left to
#: end by itself; a connected one waits for the call to end (its broker answers)
SETTLE_WAIT = 3.0


def connectors(runtime: LocalRuntime) -> list[Connector]:
    """A connector for each Kafka and Kinesis ingress and egress of the runtime's module."""
    module = runtime.module
    ios: list[Union[Ingress, Egress]] = [*module.ingresses.values(), *module.egresses.values()]
    kinds = {io.kind for io in ios}
    made: dict[str, Callable[..., Connector]] = {}
    if kinds & {KAFKA_INGRESS, KAFKA_EGRESS}:
        from .kafka import KafkaEgress, KafkaIngress

        made.update({KAFKA_INGRESS: KafkaIngress, KAFKA_EGRESS: KafkaEgress})
    if kinds & {KINESIS_INGRESS, KINESIS_EGRESS}:
        from .kinesis import KinesisEgress, KinesisIngress

        made.update({KINESIS_INGRESS: KinesisIngress, KINESIS_EGRESS: KinesisEgress})
    return [made[io.kind](runtime, io) for io in ios if io.kind in made]


class Connector:
    """One ingress or egress connected to its system (``system``: kafka, kinesis)."""

    state: str
    records: int
    cursor: int

    system = ""
    kind = ""  # ingress, egress

    def __init__(self, runtime: LocalRuntime, id_: str, address: str) -> None:
        self.runtime = runtime
        self.id = id_
        self.address = address
        self.state = "connecting"
        self.error: Optional[str] = None
        self.records = 0
        self.cursor = 0  # an egress': its position in the runtime's egress log
        self._pending: Optional[asyncio.Future[Any]] = None
        self._warned: set[str] = set()

    def __str__(self) -> str:
        return f"{self.system} {self.kind} {self.id}"

    def problem(self, text: str, state: str = "error") -> None:
        """A problem the client keeps retrying by itself: shown, and logged once a change."""
        if text != self.error:
            log.warning("%s: %s (retrying)", self, text)
        self.state, self.error = state, text

    def warn_once(self, text: str) -> None:
        """A warning of the connector's set-up: logged once, however many clients it makes."""
        if text not in self._warned:
            self._warned.add(text)
            log.warning("%s: %s", self, text)

    def connected(self) -> None:
        if self.state != "connected":
            log.info("%s: connected to %s", self, self.address)
        self.state, self.error = "connected", None

    async def run(self) -> None:
        backoff = 1.0
        while True:
            started = time.monotonic()
            try:
                await self._run()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # never the runtime's end: shown, and tried again
                detail = f": {error}" if str(error) else " (no detail)"
                failure = f"{type(error).__name__}{detail}"
                if self.state != "failed" and self.error:  # what the client said on the way
                    failure = f"{failure} ({self.error})"
                self.state, self.error = "failed", failure
                log.error("%s: %s; starting again in %.0f s", self, self.error, backoff)
            if time.monotonic() - started > 60:
                backoff = 1.0
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def _run(self) -> None:
        raise NotImplementedError

    async def blocking(self, call: Callable[..., Any], *args: Any) -> Any:
        """A blocking client call, in a thread of its own. A cancelled caller does not stop
        it: :meth:`settle` waits for it before the client is closed. The thread is a daemon,
        so that a call to a broker that does not answer does not hold up the process' exit
        (an executor's threads are waited for)."""
        loop = asyncio.get_running_loop()
        self._pending = future = loop.create_future()
        future.add_done_callback(_seen)
        threading.Thread(target=_call, args=(loop, future, call, args), name=str(self),
                         daemon=True).start()  # fmt: skip
        # shielded: a cancelled caller leaves the future to the call
        return await asyncio.shield(future)

    async def settle(self) -> bool:
        """Wait for the call under way, if any (``SETTLE_WAIT`` s at most unless connected):
        whether none is left, so that the client may be closed (a client still in a call is
        left to it)."""
        pending, self._pending = self._pending, None
        if pending is None:
            return True
        await asyncio.wait([pending], timeout=None if self.state == "connected" else SETTLE_WAIT)
        if not pending.done():
            log.warning("%s: stopped with a call to %s under way, left to end by itself",
                        self, self.address)  # fmt: skip
            return False
        return True

    async def enqueue(
        self,
        messages: Sequence[tuple[Address, TypedValue, Optional[TraceContext]]],
        positions: Callable[[], None],
    ) -> None:
        """Queue ``messages`` (each with the trace context of its record, if any) and write
        the read position (``positions``, store writes) in one SQLite transaction, once no
        target is over its ``maxNumBatchRequests``."""
        await self.runtime.send_all(messages, positions)

    async def drain(
        self,
        cursor_key: str,
        typename: str,
        deliver: Callable[[list[tuple[bytes, Optional[TraceContext]]], int], Awaitable[None]],
        limit: int,
        idle: Optional[Callable[[], Awaitable[None]]] = None,
    ) -> None:
        """An egress' loop: the runtime's egress log after ``self.cursor``, this egress'
        records of ``typename`` handed to ``deliver`` (each value with the trace context of the
        invocation that sent it, and the log position after them), then that position saved
        under ``cursor_key``. ``idle`` runs while there is none of this egress' records: nothing
        new, or only others' records passed (which asks nothing of its broker, so shows
        nothing of it: the egress is connected once it delivered, or ``idle`` saw its broker
        answer)."""
        store = self.runtime.store
        while True:
            records = store.egress_list(self.cursor, limit=limit)
            if not records:
                if idle is not None:
                    await idle()
                await self.runtime._wait_progress(1.0)
                continue
            mine = [(r.argument.value, r.trace) for r in records
                    if r.egress == self.id and r.argument.typename == typename]  # fmt: skip
            last = records[-1].seq
            if mine:
                await deliver(mine, last)
            with store.transaction():
                store.meta_put(cursor_key, last)
            self.cursor = last
            self.records += len(mine)
            if mine:
                self.connected()
            elif idle is not None:
                await idle()

    def status(self) -> dict[str, Any]:
        return {"system": self.system, "kind": self.kind, "id": self.id,
                "broker": self.address, "state": self.state, "error": self.error,
                "records": self.records}  # fmt: skip


def _call(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any],
          call: Callable[..., Any], args: tuple[Any, ...]) -> None:  # fmt: skip
    """Run ``call`` (in its thread) and hand what it returns or raises to ``future``."""
    try:
        outcome: tuple[Callable[..., None], Any] = (future.set_result, call(*args))
    except BaseException as error:  # handed to the caller, as an executor does
        outcome = (future.set_exception, error)
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits for it any more
        loop.call_soon_threadsafe(_settle_future, future, *outcome)


def _settle_future(future: asyncio.Future[Any], settle: Callable[..., None], value: Any) -> None:
    if not future.cancelled():
        settle(value)


def _seen(future: asyncio.Future[Any]) -> None:
    """What a call raised marked as seen: a caller cancelled meanwhile will not look."""
    if not future.cancelled():
        future.exception()
