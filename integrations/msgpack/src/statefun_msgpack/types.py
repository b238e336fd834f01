"""msgpack types: plain data as is, a dataclass as a map of its field names to values."""

from __future__ import annotations

import dataclasses
import functools
import sys
import typing
from typing import Any, Callable, Optional, TypeVar, cast, overload

import msgpack  # type: ignore[import-untyped]

from statefun_core.types import Type, TypeSerializer

__all__ = ["MARK", "MsgpackDecodeError", "msgpack_dataclass", "msgpack_type"]

#: The class attribute ``@msgpack_dataclass`` sets: the class's own ``Type``.
MARK = "__statefun_msgpack_type__"

C = TypeVar("C", bound=type)
_T = TypeVar("_T")


class MsgpackDecodeError(ValueError):
    """Bytes received under a msgpack typename could not be read back (the cause is chained)."""


class _Serializer(TypeSerializer[Any]):
    __slots__ = ("cls", "typename")

    def __init__(self, typename: str, cls: Optional[type]) -> None:
        self.typename = typename
        self.cls = cls

    def serialize(self, value: Any) -> bytes:
        cls = self.cls
        if cls is not None:
            if not isinstance(value, cls):
                raise TypeError(
                    f"{self.typename!r} holds {cls.__qualname__} instances, "
                    f"not {type(value).__qualname__}"
                )
            value = dataclasses.asdict(cast(Any, value))
        data: bytes = msgpack.packb(value, use_bin_type=True)
        return data

    def deserialize(self, byte: bytes) -> Any:
        try:
            data = _unpack(byte)
            return data if self.cls is None else _build(self.cls, data)
        except Exception as error:
            target = f" as {self.cls.__qualname__}" if self.cls is not None else ""
            # msgpack's FormatError (a byte no msgpack value starts with) has no message
            reason = str(error) or type(error).__name__
            raise MsgpackDecodeError(
                f"a {self.typename!r} value could not be read{target}: {reason}"
            ) from error


def _unpack(byte: bytes) -> Any:
    try:
        return msgpack.unpackb(byte, raw=False, strict_map_key=False)
    except TypeError:  # an array as a map key, a tuple when written: it comes back a tuple
        return _lists(msgpack.unpackb(byte, raw=False, strict_map_key=False, use_list=False))


def _lists(data: Any) -> Any:
    """``data`` read with every array a tuple, with lists again where they are not map keys."""
    if type(data) is tuple:  # not an ExtType, a tuple too
        return [_lists(item) for item in data]
    if isinstance(data, dict):
        return {key: _lists(value) for key, value in data.items()}
    return data


def _build(cls: type, data: Any) -> Any:
    """``cls(**data)`` with nested dataclass fields built too. Keys ``cls`` lacks are ignored
    (a newer writer added them); fields missing from ``data`` take their defaults."""
    if not isinstance(data, dict):
        raise TypeError(f"expected a map, got {type(data).__name__}")
    nested = _nested_dataclasses(cls)
    init = _init_fields(cls)
    return cls(
        **{
            name: _build(nested[name], value) if name in nested and value is not None else value
            for name, value in data.items()
            if name in init
        }
    )


@functools.cache
def _init_fields(cls: type) -> frozenset[str]:
    return frozenset(field.name for field in dataclasses.fields(cls) if field.init)


@functools.cache
def _nested_dataclasses(cls: type) -> dict[str, type]:
    """The fields of ``cls`` whose annotation is a dataclass, or an optional one."""
    nested = {}
    for name, hint in _field_hints(cls).items():
        hint = _optional_of(hint)
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            nested[name] = hint
    return nested


def _field_hints(cls: type) -> dict[str, Any]:
    """The fields' annotations, resolved (``from __future__ import annotations`` makes them
    strings); when one names something out of reach (imported for type checkers only), the
    others are still resolved, one by one."""
    try:
        return typing.get_type_hints(cls)
    except NameError:
        module = sys.modules.get(cls.__module__)
        namespace = dict(vars(module)) if module is not None else {}
        hints = {}
        for field in dataclasses.fields(cls):
            hint = field.type
            if isinstance(hint, str):
                try:
                    hint = eval(hint, namespace)  # as typing.get_type_hints evaluates it
                except Exception:
                    continue
            hints[field.name] = hint
        return hints


def _optional_of(hint: Any) -> Any:
    """``X`` for ``Optional[X]`` (``X | None``), else ``hint``."""
    args = typing.get_args(hint)
    others = [arg for arg in args if arg is not type(None)]
    return others[0] if len(others) == 1 and len(args) == 2 else hint


class MsgpackType(Type[Any]):
    """A msgpack type; make it with :func:`msgpack_type`."""

    __slots__ = ("_serializer", "cls")

    cls: Optional[type]

    def __init__(self, typename: str, cls: Optional[type]) -> None:
        super().__init__(typename)
        self.cls = cls
        self._serializer = _Serializer(typename, cls)

    def serializer(self) -> TypeSerializer[Any]:
        return self._serializer


# for type checkers: a Type of plain data without cls, of cls's instances with it
@overload
def msgpack_type(typename: str, cls: None = None) -> Type[Any]: ...
@overload
def msgpack_type(typename: str, cls: type[_T]) -> Type[_T]: ...


def msgpack_type(typename: str, cls: Optional[type] = None) -> Type[Any]:
    """A msgpack type named ``typename``.

    Without ``cls``: plain data (``dict``, ``list``, ``str``, ``int``, ``float``, ``bool``,
    ``None``, ``bytes``; tuples come back as lists, but for map keys, which stay tuples). With
    a dataclass ``cls``: its instances, as a map of field names to values (nested dataclass
    fields included).
    """
    if cls is not None and not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"msgpack_type(cls=...) takes a dataclass, not {cls!r}")
    return MsgpackType(typename, cls)


def msgpack_dataclass(typename: str) -> Callable[[C], C]:
    """Mark a dataclass as the msgpack type ``typename``; the class is returned unchanged but
    for the attribute :data:`MARK`. Subclasses are not marked by inheritance."""

    def mark(cls: C) -> C:
        setattr(cls, MARK, msgpack_type(typename, cls))
        return cls

    return mark
