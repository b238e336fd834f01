"""Well-formed requests for the fuzz functions (built with statefun_core.testing.wire)."""

from __future__ import annotations

from typing import Optional

from statefun_core import IntType, Type
from statefun_core.testing.wire import to_function, typed_value

from .fuzz_target import COUNTER

Value = tuple[Type, object]


def request(typename: str, id: str, states: dict[str, Optional[Value]], args: list[Value]) -> bytes:
    """A ToFunction for ``typename``/``id``: each state a value or None (sent without a value)
    and one invocation per argument."""
    return to_function(
        typename,
        id,
        [typed_value(*value) for value in args],
        {name: None if value is None else typed_value(*value) for name, value in states.items()},
    )


def counter_request(id: str, count: Optional[int], invocations: int, value: int = 1) -> bytes:
    """``invocations`` messages ``value`` to the counter ``id``, whose state is ``count``."""
    state = None if count is None else (IntType, count)
    return request(COUNTER, id, {"count": state}, [(IntType, value)] * invocations)
