"""Addresses, typenames and state specifications."""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import timedelta
from keyword import iskeyword
from typing import TYPE_CHECKING, Any, Optional, Union

if TYPE_CHECKING:
    from .types import Type

__all__ = ["SdkAddress", "StorageSpec", "ValueSpec", "parse_typename"]


@dataclass(frozen=True)
class SdkAddress:
    """The address of a function instance: its type (``namespace/name``) and its id."""

    namespace: str
    name: str
    id: str
    typename: str


def parse_typename(typename: str) -> tuple[str, str]:
    """Split ``namespace/name`` at the last ``/``; both parts must be non-empty."""
    if typename is None:
        raise ValueError("function type must be provided")
    idx = typename.rfind("/")
    if idx < 0:
        raise ValueError(f"typename {typename!r} must be of the form namespace/name")
    namespace, name = typename[:idx], typename[idx + 1 :]
    if not namespace:
        raise ValueError(f"typename {typename!r} has an empty namespace")
    if not name:
        raise ValueError(f"typename {typename!r} has an empty name")
    return namespace, name


def is_state_typename(typename: str) -> bool:
    """Whether the runtime takes ``typename`` as a state's type: its ``TypeName.parseFrom``
    splits it at ``/`` (dropping a trailing empty part) and wants two parts."""
    return typename.count("/") == 1 and not typename.endswith("/")


#: Names ``context.storage`` has besides the states: the fields of every storage
#: (``storage.StateValues``), which a state of the same name would hide.
RESERVED_STATE_NAMES = frozenset({"_received", "_values", "_written"})


class ValueSpec:
    """A persisted value of a function: a name, a type and an optional expiration.

    ``type`` is a StateFun :class:`~statefun_core.Type`, or a Python class that a type plugin
    knows (resolved when a handler is built). At most one of ``expire_after_call`` and
    ``expire_after_write`` may be given; durations are kept in whole milliseconds.
    """

    __slots__ = ("after_call", "after_write", "duration", "name", "type")

    name: str
    after_call: bool
    after_write: bool
    duration: int

    def __init__(
        self,
        name: str,
        type: Union[Type[Any], builtins.type],
        expire_after_call: Optional[timedelta] = None,
        expire_after_write: Optional[timedelta] = None,
    ) -> None:
        from .types import Type

        if not name:
            raise ValueError("name can not be missing.")
        if not isinstance(name, str):
            raise TypeError(f"a spec name is a str, got {name!r}")
        if not name.isidentifier():
            raise ValueError(
                f"invalid name {name!r}: a spec name may contain only letters, digits and "
                "underscores, and may not start with a digit."
            )
        if iskeyword(name):
            raise ValueError(
                f"invalid spec name {name!r}: it is a Python keyword, and spec names become "
                "attributes of context.storage."
            )
        if not name.islower():
            raise ValueError(f"Only lower case names are allowed, {name!r} is given.")
        if name in RESERVED_STATE_NAMES or (name.startswith("__") and name.endswith("__")):
            raise ValueError(
                f"invalid spec name {name!r}: context.storage uses it itself; choose another."
            )
        if not type:
            raise ValueError("type can not be missing.")
        if not isinstance(type, (Type, builtins.type)):
            raise TypeError("type is not a StateFun type.")
        if expire_after_call and expire_after_write:
            raise ValueError(
                "Either expire_after_call or expire_after_write can be set, but not both."
            )
        self.name = name
        self.type: Union[Type[Any], builtins.type] = type
        self.after_call = bool(expire_after_call)
        self.after_write = bool(expire_after_write)
        self.duration = _expiration_ms("expire_after_call", expire_after_call) or _expiration_ms(
            "expire_after_write", expire_after_write
        )

    def __repr__(self) -> str:
        typename = getattr(self.type, "typename", getattr(self.type, "__name__", self.type))
        return f"ValueSpec(name={self.name!r}, type={typename})"


@dataclass(frozen=True)
class StorageSpec:
    """A function's states as the official SDK's ``StatefulFunction.storage_spec`` gives
    them, for code written for it: their names, and their specs in declaration order."""

    names: frozenset[str]
    specs: list[ValueSpec]


def _expiration_ms(keyword: str, duration: Optional[timedelta]) -> int:
    """``duration`` in whole milliseconds; 0 for none (None or a zero ``timedelta``, as in the
    official SDK). The runtime refuses an expiration under 1 ms (Flink's state TTL must be
    positive) by failing the job, so it is refused here, where the spec is written."""
    if not duration:
        return 0
    if not isinstance(duration, timedelta):
        raise TypeError(
            f"{keyword} takes a datetime.timedelta, got {duration!r}: e.g. timedelta(minutes=30)"
        )
    milliseconds = int(duration.total_seconds() * 1000.0)
    if milliseconds <= 0:
        raise ValueError(
            f"{keyword} must be at least 1 millisecond, got {duration!r}: the runtime refuses "
            f"an expiration of {milliseconds} ms"
        )
    return milliseconds
