"""Every hookspec is tested and documented (as datasette checks its own hooks)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from statefun_core.plugins import hookspecs

ROOT = Path(__file__).resolve().parents[2]
HOOKS = sorted(spec.__name__ for spec in hookspecs._all())


def test_the_hookspecs_are_found() -> None:
    assert "statefun_batch_started" in HOOKS
    assert len(HOOKS) >= 8


def defined_test_names() -> set[str]:
    return {
        node.name
        for path in (ROOT / "tests").rglob("test_*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    }


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hookspec_has_a_test(hook: str) -> None:
    assert f"test_hook_{hook}" in defined_test_names(), f"no test_hook_{hook} under tests/"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hookspec_is_documented(hook: str) -> None:
    docs = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    headings = re.findall(r"^#+ .*$", docs, flags=re.MULTILINE)
    assert any(re.search(rf"\b{hook}\b", h) for h in headings), f"no heading for {hook}"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hookspec_has_a_docstring(hook: str) -> None:
    assert (getattr(hookspecs, hook).__doc__ or "").strip(), f"{hook} has no docstring"
