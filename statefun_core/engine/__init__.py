"""The runtime engine: StateFun's runtime rules with no I/O of their own.

Two drivers share it: the local runtime (``statefun-local``: SQLite store, HTTP, wall clock)
and the test harness (:mod:`statefun_core.testing`: :class:`MemoryStore`, the handler called
in-process, :class:`ManualClock`). A driver's loop::

    engine = Engine(MemoryStore(), ManualClock())
    engine.send(Address("example/greeter", "ann"), TypedValue("io.statefun.types/string", b"..."))
    while batches := engine.next_batches():
        for batch in batches:
            engine.complete(batch, call_the_function(batch.request))  # or engine.fail(batch)
    engine.fire_due_timers()  # when engine.next_timer_due_ms() has come
"""

from .clock import Clock, ManualClock
from .engine import Batch, Completion, Engine
from .errors import (
    CancellationTokenError,
    DiscoveryLoopError,
    EngineError,
    InvalidReplyError,
    StaleBatchError,
    StateTypeError,
    UnknownEgressError,
    UnregisteredStateError,
)
from .model import (
    UNSET_TYPENAME,
    Address,
    EgressRecord,
    Envelope,
    ExpireMode,
    StateEntry,
    StateSpec,
    Timer,
    TraceContext,
    TypedValue,
)
from .store import MemoryStore, Store

__all__ = [
    "UNSET_TYPENAME",
    "Address",
    "Batch",
    "CancellationTokenError",
    "Clock",
    "Completion",
    "DiscoveryLoopError",
    "EgressRecord",
    "Engine",
    "EngineError",
    "Envelope",
    "ExpireMode",
    "InvalidReplyError",
    "ManualClock",
    "MemoryStore",
    "StaleBatchError",
    "StateEntry",
    "StateSpec",
    "StateTypeError",
    "Store",
    "Timer",
    "TraceContext",
    "TypedValue",
    "UnknownEgressError",
    "UnregisteredStateError",
]
