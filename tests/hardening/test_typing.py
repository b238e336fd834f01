"""User code written against the public API type-checks under ``mypy --strict``."""

from __future__ import annotations

from pathlib import Path

import pytest

USER_CODE = """
from datetime import timedelta
from typing import Optional

from statefun_core import (
    Context, IntType, Message, StatefulFunctions, StringType, ValueSpec, kafka_egress_message,
    message_builder,
)

functions = StatefulFunctions()


@functions.bind("com.example/greeter", specs=[ValueSpec("seen", IntType)])
def greeter(context: Context, message: Message) -> None:
    count: Optional[int] = message.as_int() if message.is_int() else None
    name: Optional[str] = message.as_string() if message.is_string() else None
    ok: Optional[bool] = message.as_bool() if message.is_bool() else None
    big: Optional[int] = message.as_long() if message.is_long() else None
    ratio: Optional[float] = message.as_double() if message.is_double() else message.as_float()
    doc: object = message.as_type(StringType)
    context.send(message_builder("com.example/inbox", context.address.id, str_value=name or ""))
    context.send_after(timedelta(seconds=1), message_builder("a/b", "1", int_value=count or 0))
    context.send_egress(kafka_egress_message("com.example/out", "topic", "value", key="k"))
    print(ok, big, ratio, doc)
"""


def test_the_public_api_type_checks(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api")
    module = tmp_path / "user_functions.py"
    module.write_text(USER_CODE)
    out, err, status = api.run(["--strict", "--no-incremental", str(module)])
    assert status == 0, out + err
