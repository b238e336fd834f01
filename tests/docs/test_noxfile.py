"""The README's table of nox commands: plain ``nox`` runs the full matrix and everything
``nox -t ci`` runs; and ``nox -l`` describes every session. Read from noxfile.py's source, so
nox need not be installed."""

from __future__ import annotations

import ast
import re
from pathlib import Path

NOXFILE = Path(__file__).resolve().parents[2] / "noxfile.py"
# CI's core session is the tests session on the newest Python, which plain nox runs
COVERED_BY = {"core": "tests"}


def _ci_sessions(tree: ast.Module) -> set[str]:
    """The sessions whose ``@nox.session(tags=[...])`` holds ``"ci"``."""
    found = set()
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            if not isinstance(decorator, ast.Call) or ast.unparse(decorator.func) != "nox.session":
                continue
            for keyword in decorator.keywords:
                if keyword.arg == "tags" and "ci" in ast.literal_eval(keyword.value):
                    found.add(node.name)
    return found


def _default_sessions(tree: ast.Module) -> set[str]:
    """The names in ``nox.options.sessions = [...]``."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "nox.options.sessions":
            return set(ast.literal_eval(node.value))
    raise AssertionError("noxfile.py sets no nox.options.sessions")


def test_plain_nox_runs_every_ci_session() -> None:
    tree = ast.parse(NOXFILE.read_text(encoding="utf-8"))
    ci = _ci_sessions(tree)
    assert ci, "no session is tagged ci"
    default = _default_sessions(tree)
    assert {name for name in ci if COVERED_BY.get(name, name) not in default} == set()


def test_every_session_says_what_it_runs() -> None:
    """``nox -l`` lists each session with its docstring's first line: the contributor's map."""
    tree = ast.parse(NOXFILE.read_text(encoding="utf-8"))
    sessions = [
        node for node in tree.body
        if isinstance(node, ast.FunctionDef) and any(
            "nox.session" in ast.unparse(decorator) for decorator in node.decorator_list
        )
    ]  # fmt: skip
    assert len(sessions) > 20, [node.name for node in sessions]
    assert [node.name for node in sessions if not ast.get_docstring(node)] == []


def test_the_sessions_the_docs_name_exist() -> None:
    """Each ``nox -s NAME ...`` of a README or doc names a session of noxfile.py (a
    parametrized one by its name before the parenthesis: ``"flask(flask-3.1)"``)."""
    from .test_docs import ROOT, markdown_files

    tree = ast.parse(NOXFILE.read_text(encoding="utf-8"))
    sessions = {
        node.name for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any("nox.session" in ast.unparse(decorator) for decorator in node.decorator_list)
    }  # fmt: skip
    unknown = []
    for path in markdown_files():
        for names in re.findall(r"\bnox(?: -[rR])? -s ([^`\n]+)", path.read_text("utf-8")):
            for name in names.split():
                session = re.fullmatch(r'"?(\w+)(\([^)]*\))?"?[),.;:]*', name)
                if session is None:  # "--" and pytest's arguments, a comment, ...
                    break
                if session[1] not in sessions:
                    unknown.append(f"{path.relative_to(ROOT)}: nox -s {session[1]}")
    assert unknown == []
