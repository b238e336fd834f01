"""The plugin the ``pydantic`` entry point registers: every model class is a type."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel

from statefun_core.plugins import hookimpl
from statefun_core.types import Type

from .types import pydantic_type


@hookimpl
def statefun_type_for_class(cls: type) -> Optional[Type[Any]]:
    try:
        is_model = issubclass(cls, BaseModel)
    except TypeError:  # not a class: list[int] passes for a type on Python < 3.11
        return None
    return pydantic_type(cls) if is_model else None
