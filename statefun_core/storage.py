"""Address-scoped storage: ``ctx.storage.<name>`` reads, assigns and deletes state."""

from __future__ import annotations

from typing import Any, Callable, Optional

from .types import Type, TypeSerializer

__all__ = ["Cell", "StorageSpec"]

_UNREAD = object()


class Cell:
    """One state value: the received wire value, decoded on first read, encoded once at the end."""

    __slots__ = ("dirty", "received", "serializer", "type", "value")

    def __init__(self, tpe: Type, serializer: TypeSerializer, received: Any) -> None:
        self.type = tpe
        self.serializer = serializer
        self.received = received  # a TypedValue; an empty one when the runtime sent no value
        self.value: Any = _UNREAD
        self.dirty = False

    def get(self) -> Any:
        value = self.value
        if value is _UNREAD:
            received = self.received
            if not received.has_value:
                value = None
            elif received.typename != self.type.typename:
                raise TypeError(
                    f"Type mismatch: the runtime sent state of type {received.typename}, "
                    f"but it is declared as {self.type.typename}"
                )
            else:
                value = self.serializer.deserialize(received.value)
            self.value = value
        return value

    def delete(self) -> None:
        self.value = None
        self.dirty = True


def _storage_property(name: str) -> property:
    def fget(self: Any) -> Any:
        return self._cells[name].get()

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

        def __init__(self: Any, cells: dict[str, Cell]) -> None:
            self._cells = cells

        def __getattr__(self: Any, name: str) -> Any:
            raise AttributeError(
                f"'{name}' is not a registered ValueSpec for the function '{typename}'"
            )

        namespace: dict[str, Any] = {
            "__slots__": ("_cells",),
            "__init__": __init__,
            "__getattr__": __getattr__,
            "__repr__": lambda self: f"<storage of {typename}: {', '.join(names) or 'no state'}>",
        }
        for name in names:
            namespace[name] = _storage_property(name)
        self.make: Callable[[dict[str, Cell]], Any] = type(f"{typename} storage", (), namespace)
        self.names = tuple(names)


def missing(received: dict[str, Any], names: tuple[str, ...]) -> Optional[list[str]]:
    """The declared names the runtime did not send, in declaration order (None if none)."""
    absent = [name for name in names if name not in received]
    return absent or None
