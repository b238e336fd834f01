"""Setting and deleting an address's state by hand, beyond the Flink runtime (Restate's
``kv edit``): a counter set to 99 to try its overflow path, a value an address is stuck on
repaired, without writing a function for it.

A value is given as JSON and encoded by the type its function declared for the state (its
spec, registered at the function's last state discovery): a built-in type's value as that type
(``99`` for an ``int``), any other type's as the page and ``state`` show it, ``{"json": ...}``
for a type whose values are JSON text, ``{"base64": "..."}`` for its bytes as they are: the
runtime does not know another type's serializer. Everything asked is checked before anything is
written; then the values and an audit entry are written in one transaction.

A value set is written as the function writes one: for ``expire_after_write`` (and after
call) its time to live starts again at the edit. The address's next batch carries it. While a
batch of the address is being called, its request holds the state as it was taken, and its
reply could write over the edit: the edit is refused then (the runtime's
:meth:`~statefun_local.LocalRuntime.edit_state`), to be tried again once the call has ended.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from statefun_core.engine import Address, StateEntry, StateSpec, TypedValue

from . import stuck
from .guard import json_line
from .store import SqliteStore
from .values import BUILTIN_TYPES, InvalidValueError, describe, make_value

__all__ = ["ACTION", "AddressBusyError", "StateEdit", "StateEditError", "apply", "encode", "parse"]

#: The audit log's name for an edit.
ACTION = "edit-state"
_BUILTIN_TYPENAMES = frozenset(builtin.typename for builtin in BUILTIN_TYPES.values())
#: how much of a value an audit entry shows
_SHOWN_CHARS = 100


class StateEditError(ValueError):
    """An edit that can not be done as asked (the message says why): nothing is changed."""


class AddressBusyError(ValueError):
    """A batch of the address is being called: nothing is changed; try again once it ends."""


@dataclass(frozen=True)
class StateEdit:
    """An edit checked against the function's registered specs: the values to set, encoded,
    and the names of the states to delete."""

    address: Address
    values: Mapping[str, TypedValue]
    deleted: tuple[str, ...]


def parse(body: Any) -> tuple[dict[str, Any], list[str]]:
    """The values to set and the names to delete of a JSON edit ``{"set": {"name": value},
    "delete": ["name"]}``."""
    if not isinstance(body, dict) or not set(body) <= {"set", "delete"}:
        raise StateEditError('expected {"set": {"<state>": <value>, ...}, "delete": ["<state>"]}')
    values, deleted = body.get("set", {}), body.get("delete", [])
    if not isinstance(values, dict):
        raise StateEditError('"set" maps state names to their values: {"count": 99}')
    if not isinstance(deleted, list) or not all(isinstance(name, str) for name in deleted):
        raise StateEditError('"delete" is a list of state names: ["count"]')
    return values, deleted


def encode(
    store: SqliteStore, address: Address, values: Mapping[str, Any], deleted: Sequence[str]
) -> StateEdit:
    """Check an edit of ``address`` against its function's registered specs and encode its
    values; :class:`StateEditError` for the first thing that can not be done."""
    if not values and not deleted:
        raise StateEditError("nothing to edit: give a state to set or to delete")
    both = sorted(set(values) & set(deleted))
    if both:
        raise StateEditError(f"state {both[0]!r} is both set and deleted: which is meant?")
    if len(set(deleted)) != len(deleted):
        raise StateEditError("a state is deleted twice: name it once")
    specs = store.specs_get(address.typename)
    if values and not specs:
        raise StateEditError(
            f"{address.typename} has registered no state since the runtime last started: a "
            "function declares its states at its first call; edit once it has been called"
        )
    encoded = {}
    for name, value in values.items():
        spec = specs.get(name)
        if spec is None:
            raise StateEditError(
                f"{address.typename} declares no state {name!r} (it declares "
                f"{', '.join(sorted(specs))})"
            )
        encoded[name] = _encode(spec, value)
    stored = store.state_get(address)
    for name in deleted:
        if name not in specs and name not in stored:
            declared = ", ".join(sorted(specs)) or "none since the runtime last started"
            raise StateEditError(
                f"{address} has no state {name!r} to delete, and {address.typename} declares "
                f"none of that name (it declares {declared})"
            )
    return StateEdit(address, encoded, tuple(deleted))


def _encode(spec: StateSpec, value: Any) -> TypedValue:
    typename = spec.typename
    try:
        if typename in _BUILTIN_TYPENAMES:
            return make_value(typename, value)
        if isinstance(value, dict) and set(value) == {"json"}:
            return make_value(typename, value["json"])
        if (
            isinstance(value, dict)
            and set(value) == {"base64"}
            and isinstance(value["base64"], str)
        ):
            return make_value(typename, base64_data=value["base64"])
    except InvalidValueError as error:
        raise StateEditError(f"state {spec.name!r} ({typename}): {error}") from None
    raise StateEditError(
        f"state {spec.name!r} is a {typename}, whose encoding this runtime does not know: give "
        '{"json": <value>} if its values are JSON text (as `state` shows them then), or '
        '{"base64": "<its bytes>"}'
    )


def apply(store: SqliteStore, edit: StateEdit, actor: str, now_ms: int) -> str:
    """Write ``edit`` and its audit entry in one transaction; return the entry's detail. A
    value is written as the function writes one: its time to live starts now."""
    address = edit.address
    with store.transaction():
        before = store.state_get(address)
        changes = []
        for name, value in edit.values.items():
            store.state_put(address, name, StateEntry(value.typename, value.value, now_ms, now_ms))
            changes.append(f"set {name} = {_shown(value)}{_was(before.get(name))}")
        for name in edit.deleted:
            store.state_delete(address, name)
            changes.append(f"deleted {name}{_was(before.get(name))}")
        detail = "; ".join(changes)
        stuck.audit(store, now_ms, address, ACTION, None, actor, detail)
    return detail


def _was(entry: Any) -> str:
    return " (it had no value)" if entry is None else f" (was {_shown(entry)})"


def _shown(value: Any) -> str:
    """A value as ``state`` shows it, cut short for the audit log."""
    text = json_line(describe(value.typename, value.value))
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."
