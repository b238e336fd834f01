"""Request ``i`` of a long run: a ``ToFunction`` to a new address with arguments of typenames
never seen before, in a mix of what the runtime sends and what it answers."""

from __future__ import annotations

from typing import Any

from statefun_core import protocol
from statefun_core.testing import wire

KINDS = ("counter",) * 5 + ("discovery", "failing", "unknown", "sink", "malformed")
#: the status each kind is answered with
EXPECTED = {
    "counter": 200,
    "discovery": 200,
    "failing": 500,
    "unknown": 404,
    "sink": 200,
    "malformed": 400,
}


def argument(i: int) -> Any:
    return protocol.TypedValue(typename=f"soak.types/T{i}", has_value=True, value=str(i).encode())


def request(i: int) -> tuple[str, bytes]:
    """The kind of request ``i`` and its body."""
    kind = KINDS[i % len(KINDS)]
    address = f"id-{i}"
    if kind == "counter":
        state = {"count": i % 7 or None, "note": None}
        body = wire.to_function("soak/counter", address, [argument(i), argument(i + 1)], state)
    elif kind == "discovery":  # no state registered yet: the reply asks for both
        body = wire.to_function("soak/counter", address, [argument(i)])
    elif kind == "failing":
        body = wire.to_function("soak/failing", address, [argument(i)])
    elif kind == "unknown":  # a function type nobody serves, a new one each time: 404
        body = wire.to_function(f"soak.unknown/f{i}", address, [argument(i)])
    elif kind == "malformed":
        body = b"\xff\xff\x00not protobuf " + str(i).encode()
    else:
        caller = (f"soak.callers/c{i}", address)
        body = wire.to_function("soak/sink", address, [argument(i)], caller=caller)
    return kind, body
