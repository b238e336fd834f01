"""The engine's plain data: addresses, values, queued messages, timers, specs, egress records.

These are the rows a :class:`~statefun_core.engine.store.Store` keeps; each field is a string,
an integer or bytes, so a SQL store maps them onto columns directly.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Optional

from .. import protocol
from ..tracecontext import is_traceparent, is_tracestate

__all__ = [
    "UNSET_TYPENAME",
    "Address",
    "EgressRecord",
    "Envelope",
    "ExpireMode",
    "StateEntry",
    "StateSpec",
    "Timer",
    "TraceContext",
    "TypedValue",
]

#: The type recorded for a state spec that arrives with an empty ``type_typename``.
UNSET_TYPENAME = "io.statefun.types/unset"


@dataclass(frozen=True, order=True)
class Address:
    """A function instance: its type (``namespace/name``) and id.

    The type splits at its last ``/``, as the runtime splits it: ``a.b/c/d`` is namespace
    ``a.b/c``, name ``d``.
    """

    typename: str
    id: str

    @property
    def namespace(self) -> str:
        return self.typename.rpartition("/")[0]

    @property
    def name(self) -> str:
        return self.typename.rpartition("/")[2]

    def to_proto(self) -> Any:
        return protocol.Address(namespace=self.namespace, type=self.name, id=self.id)

    @classmethod
    def from_proto(cls, address: Any) -> Address:
        return cls(f"{address.namespace}/{address.type}", address.id)

    def __str__(self) -> str:
        return f"{self.typename}/{self.id}"


@dataclass(frozen=True)
class TypedValue:
    """The plain twin of the wire ``TypedValue``: a typename and the value's bytes."""

    typename: str
    value: bytes = b""
    has_value: bool = True

    def to_proto(self) -> Any:
        return protocol.TypedValue(
            typename=self.typename, has_value=self.has_value, value=self.value
        )

    @classmethod
    def from_proto(cls, value: Any) -> TypedValue:
        return cls(value.typename, bytes(value.value), value.has_value)


@dataclass(frozen=True)
class TraceContext:
    """A W3C trace context: where a message comes from, for tracing (see
    :mod:`statefun_core.tracecontext`). The runtime keeps it with a message and sends it with
    the batch that delivers it; it never reads it."""

    traceparent: str
    tracestate: str = ""

    @classmethod
    def parse(cls, traceparent: Optional[str], tracestate: str = "") -> Optional[TraceContext]:
        """The context of a ``traceparent`` (or ``traceresponse``) header value; None when
        there is none or it is malformed. A ``tracestate`` that is not printable ASCII (a
        Kafka record's header may hold any bytes) is left out: sent on, it would fail the call
        for ever."""
        if traceparent is None:
            return None
        traceparent = traceparent.strip().lower()
        if not is_traceparent(traceparent):
            return None
        tracestate = tracestate.strip()
        return cls(traceparent, tracestate if is_tracestate(tracestate) else "")


@dataclass(frozen=True)
class Envelope:
    """A message in a mailbox. ``seq`` is given by the store: it grows with every append, so
    the messages of one address are in arrival order when sorted by it. ``trace`` is the trace
    context of what sent it (the batch of a function, or the ingress), when known."""

    target: Address
    argument: TypedValue
    caller: Optional[Address] = None
    seq: int = 0
    trace: Optional[TraceContext] = None


class ExpireMode(enum.IntEnum):
    """``FromFunction.ExpirationSpec.ExpireMode``."""

    NONE = 0
    AFTER_WRITE = 1
    AFTER_INVOKE = 2


@dataclass(frozen=True)
class StateSpec:
    """A state a function type declared (learnt through state discovery)."""

    name: str
    typename: str
    expire_mode: ExpireMode = ExpireMode.NONE
    expire_after_ms: int = 0


@dataclass(frozen=True)
class StateEntry:
    """The stored value of one state of one address.

    ``written_ms`` is when a ``MODIFY`` last wrote it; ``accessed_ms`` when it was last read or
    written (what ``AFTER_INVOKE`` expiry counts from).
    """

    typename: str
    value: bytes
    written_ms: int
    accessed_ms: int

    def expired(self, spec: StateSpec, now_ms: int) -> bool:
        if spec.expire_mode == ExpireMode.AFTER_WRITE:
            return self.written_ms + spec.expire_after_ms <= now_ms
        if spec.expire_mode == ExpireMode.AFTER_INVOKE:
            return self.accessed_ms + spec.expire_after_ms <= now_ms
        return False


@dataclass(frozen=True)
class Timer:
    """A delayed message waiting for ``due_ms``.

    ``caller`` is the function that scheduled it (the caller on delivery); ``scope`` is the
    namespace of its ``token`` (the scheduling address's id, as the reference runtime);
    ``seq`` is given by the store and orders timers due at the same instant; ``trace`` is the
    trace context of the batch that scheduled it.
    """

    due_ms: int
    target: Address
    argument: TypedValue
    caller: Address
    token: Optional[str] = None
    scope: str = ""
    seq: int = 0
    trace: Optional[TraceContext] = None


@dataclass(frozen=True)
class EgressRecord:
    """A record a function sent to an egress (``egress`` is the egress id ``ns/name``);
    ``trace`` is the trace context of the batch that sent it."""

    egress: str
    argument: TypedValue
    seq: int = 0
    trace: Optional[TraceContext] = None
