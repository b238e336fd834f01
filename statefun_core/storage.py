"""Address-scoped storage: ``ctx.storage.<name>`` reads, assigns and deletes state."""

from __future__ import annotations

from typing import Any, Callable, Optional

from .types import Type, TypeSerializer

__all__ = ["Cell", "StorageSpec", "make_cell"]

_UNREAD = object()


class Cell:
    """One state value: the received wire value, decoded on first read, encoded once at the end.

    Made by :func:`make_cell`.
    """

    __slots__ = ("dirty", "received", "serializer", "type", "value")

    type: Type
    serializer: TypeSerializer
    received: Any  # a TypedValue; an empty one when the runtime sent no value
    value: Any
    dirty: bool

    def delete(self) -> None:
        self.value = None
        self.dirty = True


_new_cell = Cell.__new__


def make_cell(tpe: Type, serializer: TypeSerializer, received: Any) -> Cell:
    # built field by field: a class call with __init__ costs several times more, once per state
    # per request
    cell = _new_cell(Cell)
    cell.type = tpe
    cell.serializer = serializer
    cell.received = received
    cell.value = _UNREAD
    cell.dirty = False
    return cell


def _storage_property(name: str) -> property:
    def fget(self: Any) -> Any:
        cell = self._cells[name]
        value = cell.value
        if value is _UNREAD:  # first read: decode the received value
            received = cell.received
            if not received.has_value:
                value = None
            elif received.typename != cell.type.typename:
                raise TypeError(
                    f"Type mismatch: the runtime sent state {name!r} of type "
                    f"{received.typename}, but it is declared as {cell.type.typename}"
                )
            else:
                value = cell.serializer.deserialize(received.value)
            cell.value = value
        return value

    def fset(self: Any, value: Any) -> None:
        if value is None:
            raise ValueError("provided value must not be None. To delete a value, please use del.")
        cell = self._cells[name]
        cell.value = value
        cell.dirty = True

    def fdel(self: Any) -> None:
        self._cells[name].delete()

    return property(fget, fset, fdel)


class StorageSpec:
    """The storage class of one function, generated once from its specs.

    Reading an unregistered name raises an ``AttributeError`` that names the function; setting
    or deleting one raises Python's own, which names the class: ``'<typename> storage'``.
    """

    __slots__ = ("make", "names")

    def __init__(self, typename: str, names: list[str]) -> None:
        if len(set(names)) != len(names):
            duplicate = next(n for n in names if names.count(n) > 1)
            raise ValueError(f"duplicate registered value name: {duplicate}")

        def __getattr__(self: Any, name: str) -> Any:
            raise AttributeError(
                f"'{name}' is not a registered ValueSpec for the function '{typename}'"
            )

        namespace: dict[str, Any] = {
            "__slots__": ("_cells",),
            "__getattr__": __getattr__,
            "__repr__": lambda self: f"<storage of {typename}: {', '.join(names) or 'no state'}>",
        }
        for name in names:
            namespace[name] = _storage_property(name)
        storage_class: Any = type(f"{typename} storage", (), namespace)
        new_storage = storage_class.__new__

        def make(cells: dict[str, Cell]) -> Any:
            storage = new_storage(storage_class)
            storage._cells = cells
            return storage

        self.make: Callable[[dict[str, Cell]], Any] = make
        self.names = tuple(names)


def missing(received: dict[str, Any], names: tuple[str, ...]) -> Optional[list[str]]:
    """The declared names the runtime did not send, in declaration order (None if none)."""
    absent = [name for name in names if name not in received]
    return absent or None
