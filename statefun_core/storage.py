"""Address-scoped storage: ``ctx.storage.<name>`` reads, assigns and deletes state.

Each function gets a storage class, generated once per handler from its resolved specs: one
property per state name. A request's storage holds what the runtime sent, the values read or
written so far (decoded on first read, never before) and the names written; the handler
encodes written values once, when the batch ends.
"""

from __future__ import annotations

from typing import Any, Optional

from .errors import mark_unreadable
from .types import Type, to_bytes

__all__ = ["StateValues", "checkpoint", "rollback", "storage_class"]

#: ``name -> (Type, serializer)`` of a function's states, in declaration order.
Specs = dict[str, tuple[Type, Any]]


class StateValues:
    """The slots every storage class has (the state itself is behind the properties).

    The handler makes a request's storage and sets all three itself; a storage without them
    fails on its first read or write.
    """

    __slots__ = ("_received", "_values", "_written")

    _received: dict[str, Any]  # name -> the request's PersistedValue
    _values: dict[str, Any]  # name -> value read or written (None: deleted or absent)
    _written: set[str]


def _state_property(name: str, tpe: Type, serializer: Any) -> property:
    typename = tpe.typename
    deserialize = serializer.deserialize

    def fget(self: Any) -> Any:
        values = self._values
        if name in values:
            return values[name]
        received = self._received[name].state_value  # an empty TypedValue when none was sent
        if not received.has_value:
            value = None
        elif received.typename != typename:
            mismatch = TypeError(
                f"Type mismatch: the runtime sent state {name!r} of type {received.typename}, "
                f"but it is declared as {typename}"
            )
            mark_unreadable(mismatch)
            raise mismatch
        else:
            try:
                value = deserialize(received.value)
            except Exception as error:
                mark_unreadable(error)
                raise
        values[name] = value
        return value

    def fset(self: Any, value: Any) -> None:
        if value is None:
            raise ValueError("provided value must not be None. To delete a value, please use del.")
        self._values[name] = value
        self._written.add(name)

    def fdel(self: Any) -> None:
        self._values[name] = None
        self._written.add(name)

    return property(fget, fset, fdel)


def storage_class(typename: str, specs: Specs) -> type[StateValues]:
    """The storage class of a function: one property per state.

    A request's storage is an instance with its three fields set: the ``PersistedValue``s
    received by name, an empty dict and an empty set (the handler sets them itself, which
    costs less than a call). Reading, setting or deleting an unregistered name raises
    Python's own ``AttributeError``, which names the function through the class:
    ``'<typename> storage' object has no attribute '<name>'``. (No ``__getattr__`` for a
    custom message: its mere presence makes every attribute read of the class slower.)
    """
    names = ", ".join(specs) or "no state"
    namespace: dict[str, Any] = {
        "__slots__": (),
        "_specs": specs,
        "__repr__": lambda self: f"<storage of {typename}: {names}>",
    }
    for name, (tpe, serializer) in specs.items():
        namespace[name] = _state_property(name, tpe, serializer)
    return type(f"{typename} storage", (StateValues,), namespace)


#: What :func:`rollback` restores: each state written so far, encoded (None: deleted).
Checkpoint = dict[str, Optional[bytes]]


def checkpoint(storage: StateValues) -> Checkpoint:
    """The states written so far, encoded, so that a value changed in place later cannot
    change what :func:`rollback` restores. Costs nothing before the first write."""
    values = storage._values
    specs: Specs = storage._specs  # type: ignore[attr-defined]
    saved: Checkpoint = {}
    for name in storage._written:
        value = values[name]
        if value is None:
            saved[name] = None
        else:
            tpe, serializer = specs[name]
            saved[name] = to_bytes(serializer.serialize(value), tpe.typename)
    return saved


def rollback(storage: StateValues, saved: Checkpoint) -> None:
    """Put the storage back as it was at :func:`checkpoint`. Values read but not written are
    dropped, to be read again from what the runtime sent."""
    values = storage._values
    specs: Specs = storage._specs  # type: ignore[attr-defined]
    values.clear()
    for name, data in saved.items():
        values[name] = None if data is None else specs[name][1].deserialize(data)
    written = storage._written
    written.clear()
    written.update(saved)
