"""What the engine raises when a reply breaks the runtime's rules (fatal in the reference
runtime, §11 of the protocol). A reply that raises is not applied: the store rolls back and
the batch stays in flight."""

from __future__ import annotations

from ..errors import StatefunError

__all__ = [
    "CancellationTokenError",
    "DiscoveryLoopError",
    "EngineError",
    "InvalidReplyError",
    "StaleBatchError",
    "StateTypeError",
    "UnknownEgressError",
    "UnregisteredStateError",
]


class EngineError(StatefunError):
    """A function's reply, or a driver's call, breaks the runtime's rules."""


class InvalidReplyError(EngineError):
    """The reply is not a ``FromFunction``, or holds an impossible value (a negative delay, a
    cancellation without token, a malformed typename)."""


class CancellationTokenError(EngineError):
    """A delayed message reuses a cancellation token that is still pending in its scope."""


class UnregisteredStateError(EngineError):
    """A state mutation names a state the function type never declared."""


class StateTypeError(EngineError):
    """A state's type changed: a spec re-declared with another type, or a ``MODIFY`` whose
    value is not of the registered type."""


class DiscoveryLoopError(EngineError):
    """The function keeps reporting missing state after the engine's cap of discovery rounds."""


class StaleBatchError(EngineError):
    """The batch completed or failed is not the one in flight for its address."""


class UnknownEgressError(EngineError):
    """A reply sends to an egress id the engine was not told about."""
