"""The plugin the ``msgpack`` entry point registers: dataclasses marked with
``@msgpack_dataclass`` are types."""

from __future__ import annotations

from typing import Any, Optional

from statefun_core.plugins import hookimpl
from statefun_core.types import Type

from .types import MARK


@hookimpl
def statefun_type_for_class(cls: type) -> Optional[Type[Any]]:
    found = cls.__dict__.get(MARK)
    return found if isinstance(found, Type) else None
