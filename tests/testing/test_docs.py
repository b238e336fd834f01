"""The examples in docs/testing.md run as written."""

from __future__ import annotations

import re
from pathlib import Path

from statefun_core.testing import Harness

DOC = Path(__file__).parents[2] / "docs" / "testing.md"


def code_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)


def test_the_greeter_example_and_its_tests_pass():
    greeter, greeter_test, async_test, wire_test, _ = code_blocks()
    namespace: dict = {"Harness": Harness}
    exec(greeter, namespace)
    exec(greeter_test.replace("from greeter import functions\n", ""), namespace)
    exec(async_test, namespace)
    exec(wire_test, namespace)

    namespace["test_greets_every_visit"](lambda functions, **options: Harness(functions, **options))
    namespace["test_async_greeter"]()
    namespace["test_one_request_at_a_time"]()


def test_the_endpoint_example_compiles():
    *_, endpoint_test = code_blocks()  # it needs the reader's own server to run
    compile(endpoint_test, "docs/testing.md", "exec")
    assert "ENDPOINT_CHECKS" in endpoint_test
