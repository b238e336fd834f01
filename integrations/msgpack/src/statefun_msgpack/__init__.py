"""Compact msgpack StateFun types for dicts, lists and dataclasses.

``msgpack_type("app/Scores")`` is a type for plain data; ``msgpack_type("app/Point", Point)``
one for a dataclass. Mark a dataclass with ``@msgpack_dataclass("app/Point")`` and the class
itself is a type wherever a ``Type`` goes (the ``msgpack`` entry point answers for it).
"""

from __future__ import annotations

from statefun_core.errors import IntegrationNotAvailableError

try:
    import msgpack  # type: ignore[import-untyped]  # noqa: F401
except ImportError as _error:  # pragma: no cover - msgpack is a dependency
    raise IntegrationNotAvailableError(
        "statefun_msgpack needs msgpack: pip install statefun-msgpack"
    ) from _error

from .types import MARK, MsgpackDecodeError, msgpack_dataclass, msgpack_type

__version__ = "0.1.0"

__all__ = ["MARK", "MsgpackDecodeError", "msgpack_dataclass", "msgpack_type"]
