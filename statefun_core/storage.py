"""Address-scoped storage: ``ctx.storage.<name>`` reads, assigns and deletes state.

Each function gets a storage class, generated once per handler from its resolved specs: one
property per state name. A request's storage holds what the runtime sent and what was written
so far, and behaves as the official SDK's does:

- a value is encoded when it is assigned, so a value that cannot be encoded raises at the
  assignment, where the function can catch it; so does one that encodes to more than
  ``Limits.state_value_bytes`` (``LimitExceededError``), which a dead-letter policy can then
  name final instead of failing every retry of the batch;
- a read returns the decoded stored value: a ``FloatType`` state reads back float32-rounded,
  ``True`` written to an ``IntType`` reads back ``1``, a tuple in a JSON state a list;
- a value read or assigned is a copy: changing it in place, without assigning it again,
  changes nothing stored.

Values of the built-in types are immutable, so the decoded value is kept and returned by
every read. Values of other types (JSON, protobuf, plugins' types) are decoded on each read,
from the bytes received or written. An ``int`` in range for ``IntType`` or ``LongType`` and a
``bool`` for ``BoolType`` are kept as they are and encoded when the reply is built: their
encoding cannot fail, and a function that writes its counter on every invocation of a batch
pays for one encoding, not one per invocation.
"""

from __future__ import annotations

import functools
import struct
from typing import Any, Callable, Optional

from ._mypyc import caused, mypyc_attr
from .errors import LimitExceededError, mark_unreadable
from .types import BUILTIN_TYPES, BoolType, IntType, LongType, StringType, Type, to_bytes

__all__ = [
    "StateValues",
    "checkpoint",
    "kept_encoder",
    "kept_size",
    "rollback",
    "state_serializer",
    "storage_class",
]

#: ``name -> (Type, serializer)`` of a function's states, in declaration order.
Specs = dict[str, tuple[Type[Any], Any]]

#: The built-in types whose values are stored as they are (by identity: a Type may define
#: ``__eq__``): the class and range of such a value, and how the reply encodes one that is not
#: zero or False (proto3 leaves those out): the field's tag and the value packed by one C call,
#: the bytes the type's serializer writes in Python.
_KEPT_AS_IS: tuple[tuple[Type[Any], tuple[Any, int, int], struct.Struct, int], ...] = (
    (IntType, (int, -(2**31), 2**31 - 1), struct.Struct("<Bi"), 0x0D),
    (LongType, (int, -(2**63), 2**63 - 1), struct.Struct("<Bq"), 0x09),
    (BoolType, (bool, False, True), struct.Struct("<B?"), 0x08),
)
_LONGEST_KEPT = max(packer.size for _, _, packer, _ in _KEPT_AS_IS)
_NO_PACKER = struct.Struct("")


@mypyc_attr(allow_interpreted_subclasses=True)
class StateValues:
    """The slots every storage class has (the state itself is behind the properties).

    The handler makes a request's storage and sets all three itself; a storage without them
    fails on its first read or write.
    """

    __slots__ = ("_received", "_values", "_written")

    _received: dict[str, Any]  # name -> the request's PersistedValue
    _values: dict[str, Any]  # name -> decoded value of a built-in type (None: deleted, absent)
    # name -> what to write: the encoded bytes, None to delete, or an int or bool to encode
    # when the reply is built (see the module's docstring)
    _written: dict[str, Any]


def state_serializer(tpe: Type[Any], serializer: Any) -> Callable[[Any], bytes]:
    """``serializer.serialize``, made to return bytes (the built-in types' already do)."""
    # what it returns is not taken for bytes until to_bytes says so: a user's serializer may
    # return str or a bytes-like, which a compiled build would refuse as not bytes
    serialize: Callable[[Any], Any] = serializer.serialize
    if _is_builtin(tpe):
        return serialize
    typename = tpe.typename
    return lambda value: to_bytes(serialize(value), typename)


def kept_encoder(tpe: Type[Any]) -> Callable[[Any], bytes]:
    """How the reply encodes an int or bool of ``tpe`` kept as it is, when it is not zero or
    False (those encode to no bytes)."""
    for builtin, _, packer, tag in _KEPT_AS_IS:
        if tpe is builtin:
            return functools.partial(packer.pack, tag)
    return _never_kept


def kept_size(tpe: Type[Any]) -> int:
    """How many bytes :func:`kept_encoder` writes for every value of ``tpe`` that is not zero
    or False; 0 for a type whose values are stored encoded."""
    for builtin, _, packer, _ in _KEPT_AS_IS:
        if tpe is builtin:
            return packer.size
    return 0


def _never_kept(value: Any) -> bytes:
    raise AssertionError(f"a value of this type is stored encoded, not as it is: {value!r:.100}")


def _is_builtin(tpe: Type[Any]) -> bool:
    return any(tpe is builtin for builtin in BUILTIN_TYPES)


def _none_error() -> ValueError:
    return ValueError("provided value must not be None. To delete a value, please use del.")


def _naming_state(error: Exception, name: str, typename: str) -> Exception:
    """A plain ``TypeError`` or ``ValueError`` of a serializer (protobuf's, json's), which says
    only what is wrong with the value, again naming the state and its type; any other error
    (a subclass such as ``UnicodeEncodeError``, with fields of its own) as it is."""
    if type(error) not in (TypeError, ValueError):
        return error
    return type(error)(f"state {name!r} is of type {typename}: {error}")


def _too_large(name: str, size: int, maximum: float) -> LimitExceededError:
    """Over ``Limits.state_value_bytes``: raised at the assignment, so that the function can
    catch it, or name it a final failure."""
    what = f"state_value_bytes of {name!r}"
    return LimitExceededError("state_value_bytes", size, int(maximum), what)


def _received_reader(name: str, typename: str, deserialize: Any) -> Callable[[Any], Any]:
    """Decodes the state the runtime sent (None when it sent no value)."""

    def read_received(storage: Any) -> Any:
        received = storage._received[name].state_value  # an empty TypedValue when none was sent
        if not received.has_value:
            return None
        if received.typename != typename:
            mismatch = TypeError(
                f"Type mismatch: the runtime sent state {name!r} of type {received.typename}, "
                f"but it is declared as {typename}"
            )
            mark_unreadable(mismatch)
            raise mismatch
        try:
            return deserialize(received.value)
        except Exception as error:
            mark_unreadable(error)
            raise

    return read_received


def _builtin_property(name: str, tpe: Type[Any], serializer: Any, maximum: float) -> property:
    """A state of a built-in type: its decoded value is kept, and every read returns it."""
    serialize = serializer.serialize
    deserialize = serializer.deserialize
    typename = tpe.typename
    read_received = _received_reader(name, typename, deserialize)
    kept: Optional[tuple[Any, int, int]] = None
    # An int or bool received as kept_encoder writes one (its tag, then the value packed: the
    # canonical encoding) is unpacked here, one C call instead of deserialize's frame. A type
    # not kept as it is has packed_size -1: never unpacked here.
    packed_size, tag, unpack = -1, 0, _NO_PACKER.unpack
    for builtin, bounds, packer, kept_tag in _KEPT_AS_IS:
        if tpe is builtin:
            kept, packed_size, tag, unpack = bounds, packer.size, kept_tag, packer.unpack
    if maximum < _LONGEST_KEPT:
        kept = None  # a limit so low that an int or bool must be measured too

    def fget(self: Any) -> Any:
        values = self._values
        if name in values:
            return values[name]
        received = self._received[name].state_value
        if received.has_value and received.typename == typename:  # read_received, one call less
            data = received.value
            if len(data) == packed_size and data[0] == tag:
                value = unpack(data)[1]
            else:
                try:
                    value = deserialize(data)
                except Exception as error:
                    mark_unreadable(error)
                    raise
        else:
            value = read_received(self)  # None, or the type mismatch
        values[name] = value
        return value

    def encode(value: Any) -> tuple[Any, Any]:
        """(what to write, what a read returns) for any value: the official SDK's outcome."""
        if value is None:
            raise _none_error()
        try:
            data = serialize(value)
        except (TypeError, ValueError) as error:
            raise caused(_naming_state(error, name, typename), None)
        if len(data) > maximum:
            raise _too_large(name, len(data), maximum)
        return data, deserialize(data)

    # each type's common case first, without a call: functions write state on every invocation
    if kept is not None:
        kind, lowest, highest = kept

        def fset(self: Any, value: Any) -> None:
            if type(value) is kind and lowest <= value <= highest:
                self._values[name] = self._written[name] = value  # encoded in the reply
            else:
                self._written[name], self._values[name] = encode(value)

    elif tpe is StringType:

        def fset(self: Any, value: Any) -> None:
            if type(value) is str:
                data = serialize(value)  # raises before anything is stored
                if len(data) > maximum:
                    raise _too_large(name, len(data), maximum)
                self._written[name] = data
                self._values[name] = value
            else:
                self._written[name], self._values[name] = encode(value)

    else:

        def fset(self: Any, value: Any) -> None:
            self._written[name], self._values[name] = encode(value)

    def fdel(self: Any) -> None:
        self._values[name] = self._written[name] = None

    return property(fget, fset, fdel)


def _decoding_property(name: str, tpe: Type[Any], serializer: Any, maximum: float) -> property:
    """A state of any other type: each read decodes the bytes received or written."""
    serialize = state_serializer(tpe, serializer)
    deserialize = serializer.deserialize
    read_received = _received_reader(name, tpe.typename, deserialize)

    def fget(self: Any) -> Any:
        written = self._written
        if name in written:
            data = written[name]
            return None if data is None else deserialize(data)
        return read_received(self)

    def fset(self: Any, value: Any) -> None:
        if value is None:
            raise _none_error()
        try:
            data = serialize(value)
        except (TypeError, ValueError) as error:
            raise caused(_naming_state(error, name, tpe.typename), None)
        if len(data) > maximum:
            raise _too_large(name, len(data), maximum)
        self._written[name] = data

    def fdel(self: Any) -> None:
        self._written[name] = None

    return property(fget, fset, fdel)


def storage_class(
    typename: str, specs: Specs, max_value_bytes: float = float("inf")
) -> type[StateValues]:
    """The storage class of a function: one property per state, refusing to store a value
    that encodes to more than ``max_value_bytes`` (``LimitExceededError``).

    A request's storage is an instance with its three fields set: the ``PersistedValue``s
    received by name and two empty dicts (the handler sets them itself, which costs less than
    a call). Reading, setting or deleting an unregistered name raises Python's own
    ``AttributeError``, which names the function through the class:
    ``'<typename> storage' object has no attribute '<name>'``. (No ``__getattr__`` for a
    custom message: its mere presence makes every attribute read of the class slower.)
    """
    names = ", ".join(specs) or "no state"
    namespace: dict[str, Any] = {
        "__slots__": (),
        "__repr__": lambda self: f"<storage of {typename}: {names}>",
    }
    for name, (tpe, serializer) in specs.items():
        make = _builtin_property if _is_builtin(tpe) else _decoding_property
        namespace[name] = make(name, tpe, serializer, max_value_bytes)
    return type(f"{typename} storage", (StateValues,), namespace)


#: What :func:`rollback` restores: the storage's written and kept values at :func:`checkpoint`.
Checkpoint = tuple[dict[str, Any], dict[str, Any]]


def checkpoint(storage: StateValues) -> Checkpoint:
    """The storage as it is now. What it holds is encoded bytes or immutable built-in values
    (see the module's docstring), so a value changed in place later cannot change it."""
    return dict(storage._written), dict(storage._values)


def rollback(storage: StateValues, saved: Checkpoint) -> None:
    """Put the storage back as it was at :func:`checkpoint`."""
    written, values = saved
    storage._written.clear()
    storage._written.update(written)
    storage._values.clear()
    storage._values.update(values)
