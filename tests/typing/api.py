"""What a type checker sees of ``Message.as_type``: checked by ``mypy --strict`` and pyright in
the ``typecheck`` session (see ``uses_core.py``), not run by pytest."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from typing_extensions import assert_type

from statefun_core import Context, Message, StringType, message_builder


@dataclass
class Money:
    cents: int


def handle(context: Context, message: Message) -> None:
    assert_type(message.as_type(Money), Optional[Money])  # a class a type plugin knows
    assert_type(message.as_type(StringType), Optional[str])
    assert_type(message.as_string(), Optional[str])
    assert_type(message.as_int(), Optional[int])
    name = message.as_string() or ""
    context.send(message_builder(target_typename="ns/inbox", target_id=name, str_value=name))
