"""Time for the engine: a :class:`Clock` gives milliseconds; :class:`ManualClock` is moved by
hand (tests, the harness). The local runtime brings a wall clock."""

from __future__ import annotations

from typing import Protocol

__all__ = ["Clock", "ManualClock"]


class Clock(Protocol):
    def now_ms(self) -> int:
        """The current processing time in milliseconds."""
        ...


class ManualClock:
    """A clock that only moves when told to."""

    def __init__(self, start_ms: int = 0) -> None:
        self._now_ms = start_ms

    def now_ms(self) -> int:
        return self._now_ms

    def advance(self, ms: int) -> int:
        """Move forward by ``ms`` milliseconds; return the new time."""
        if ms < 0:
            raise ValueError(f"time only moves forward; got {ms} ms")
        self._now_ms += ms
        return self._now_ms
