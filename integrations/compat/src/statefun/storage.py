"""The official SDK's ``statefun.storage``: a function's state specs, resolved against the
values the runtime sent into the storage a function sees as ``context.storage``.

The storage :func:`resolve` makes is statefun_core's, as a function gets it: its workings
(the official SDK's ``Cell``, ``_cells`` and the generated class's helpers) are not here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Optional

from statefun_core.core import StorageSpec, ValueSpec
from statefun_core.protocol import ToFunction, TypedValue
from statefun_core.storage import storage_class
from statefun_core.types import Type

from .utils import from_typed_value, to_typed_value

__all__ = [
    "Resolution",
    "StorageSpec",
    "ToFunction",
    "Type",
    "TypedValue",
    "ValueSpec",
    "from_typed_value",
    "make_address_storage_spec",
    "resolve",
    "to_typed_value",
]


@dataclass(frozen=True)
class Resolution:
    """The specs whose values did not come (the runtime is asked for them), or the storage."""

    missing_specs: Optional[list[ValueSpec]]
    storage: Optional[Any]


def make_address_storage_spec(specs: list[ValueSpec]) -> StorageSpec:
    """The :class:`StorageSpec` of a function's specs; a name given twice is a ``ValueError``."""
    names = [spec.name for spec in specs]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f"duplicate registered value name: {name}")
    return StorageSpec(frozenset(names), specs)


def resolve(storage: StorageSpec, typename: str, values: Iterable[Any]) -> Resolution:
    """The storage of a function ``typename`` holding ``values`` (``ToFunction.PersistedValue``s,
    or anything with a ``state_name`` and a ``state_value``), or the specs that have no value
    among them, in declaration order. Values of names no spec declares are left out."""
    received = {value.state_name: value for value in values}
    missing = [spec for spec in storage.specs if spec.name not in received]
    if missing:
        return Resolution(missing_specs=missing, storage=None)
    types: dict[str, tuple[Type[Any], Any]] = {}
    for spec in storage.specs:
        if not isinstance(spec.type, Type):
            raise TypeError(
                f"state {spec.name!r} is declared with {spec.type!r}, which only a handler's "
                "type plugins resolve: resolve() takes StateFun Types"
            )
        types[spec.name] = (spec.type, spec.type.serializer())
    made = storage_class(typename, types)()
    made._received = received
    made._values = {}
    made._written = {}
    return Resolution(missing_specs=None, storage=made)
