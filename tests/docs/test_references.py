"""What the docs point at exists: a relative link's file and its ``#anchor`` (a heading, as
GitHub makes its anchor), a path of the repository named as a code span, each
statefun-local option, ``STATEFUN_...`` variable and ``statefun_core.…`` name the docs name."""

from __future__ import annotations

import argparse
import importlib
import re
from pathlib import Path

import pytest
from statefun_local import cli

from .test_docs import ROOT, markdown_files

LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCED = re.compile(r"^```.*?^```", re.S | re.M)
#: the docs that describe statefun-local's command line
LOCAL_DOCS = ["local/README.md", "docs/deployment.md", "docs/dead-letters.md"]
#: options in those docs that are other programs': java's, the differential run's, the
#: reloading servers'; and "the other ``--dead-letter-...`` options"
OTHER_OPTIONS = {"--add-opens", "--dead-letters", "--dead-letter", "--reload", "--app", "--debug"}
OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*[a-z0-9])")
COMMAND_LINE = re.compile(r"statefun-local (\w[\w-]*)([^`\n]*)")


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: its text lower-cased, without punctuation but ``-`` and
    ``_``, spaces made ``-``."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    found: set[str] = set()
    for line in FENCED.sub("", path.read_text(encoding="utf-8")).split("\n"):
        heading = re.match(r"#{1,6} (.+?)\s*$", line)
        if heading:
            anchor = _anchor(heading[1])
            repeated = sum(a == anchor or re.fullmatch(rf"{re.escape(anchor)}-\d+", a) is not None
                           for a in found)  # fmt: skip
            found.add(f"{anchor}-{repeated}" if repeated else anchor)
    return found


def test_anchors_are_made_as_github_makes_them() -> None:
    assert _anchor("5. AWS Lambda") == "5-aws-lambda"
    assert _anchor("Testing a Lambda function (`statefun_core.testing.aws_lambda`)") == (
        "testing-a-lambda-function-statefun_coretestingaws_lambda"
    )
    assert _anchor("In statefun-local: stuck addresses") == "in-statefun-local-stuck-addresses"


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_lead_to_a_file_and_heading(path: Path) -> None:
    broken = []
    for target in LINK.findall(FENCED.sub("", path.read_text(encoding="utf-8"))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        linked = (path.parent / file) if file else path
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(f"{target}: no heading with that anchor")
    assert broken == [], path.relative_to(ROOT)


def _options() -> dict[str, set[str]]:
    """Each statefun-local command's options."""
    (commands,) = (a for a in cli._parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {
        name: {option for action in parser._actions for option in action.option_strings}
        for name, parser in commands.choices.items()
    }


@pytest.mark.parametrize("name", LOCAL_DOCS)
def test_the_statefun_local_options_the_docs_name_exist(name: str) -> None:
    options = _options()
    every = set().union(*options.values())
    text = (ROOT / name).read_text(encoding="utf-8")
    unknown = set(OPTION.findall(text)) - every - OTHER_OPTIONS
    assert unknown == set(), f"{name} names options statefun-local has not"
    for command, arguments in COMMAND_LINE.findall(text):
        if command in options:
            assert set(OPTION.findall(arguments)) <= options[command], (name, command, arguments)


#: the repository's top-level folders and files a doc names a path of as `folder/...`
TOP_LEVEL = ("statefun_core/", "integrations/", "local/", "examples/", "tests/", "docs/",
             "benchmarks/", "fuzz/", ".ci/", "noxfile.py", "pyproject.toml")  # fmt: skip
#: what the tools make, git-ignored: named in the docs, absent from a checkout
MADE_BY_TOOLS = ("benchmarks/.venvs/", "benchmarks/results/", "fuzz/work/")
CODE_SPAN = re.compile(r"`([^`\s]+)`")
#: a placeholder or a glob, not a path: integrations/<name>/, protocol/*.proto
PATTERN = re.compile(r"[<>*{}$]")


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_repository_paths_named_exist(path: Path) -> None:
    """The READMEs are PyPI pages, so they name a file of the repository as a code span
    (``examples/greeter/module.yaml``) rather than link it: each such path exists, from the
    repository's root or from the doc's folder."""
    missing = []
    for span in CODE_SPAN.findall(path.read_text(encoding="utf-8")):
        named = re.split(r"::|#|:\d", span.rstrip(",.;:"))[0]
        is_path = named.endswith("/") or re.search(r"\.[a-z]{1,5}$", named)
        if not is_path or not named.startswith(TOP_LEVEL) or named.startswith(MADE_BY_TOOLS):
            continue
        if PATTERN.search(named):
            continue
        if not (ROOT / named).exists() and not (path.parent / named).exists():
            missing.append(named)
    assert missing == [], path.relative_to(ROOT)


#: kzmlabs/flink-statefun's, which finds its module by it (docs/deployment.md, 4.)
OTHER_VARIABLES = {"STATEFUN_MODULE_PATH"}
SOURCES = ["statefun_core", "integrations", "local/src", "examples"]


def test_the_statefun_variables_the_docs_name_are_read() -> None:
    """Each ``STATEFUN_...`` environment variable or setting the docs name is in the code."""
    code = "\n".join(
        source.read_text(encoding="utf-8")
        for folder in SOURCES
        for source in (ROOT / folder).rglob("*.py")
        if "tests" not in source.relative_to(ROOT).parts
    ) + (ROOT / "noxfile.py").read_text(encoding="utf-8")  # the benches' STATEFUN_BENCH_PYTHON
    named = {
        name
        for path in markdown_files()
        for name in re.findall(r"\bSTATEFUN_[A-Z][A-Z0-9_]*", path.read_text(encoding="utf-8"))
    }
    assert named, "no STATEFUN_ variable found in the docs"
    assert {name for name in named - OTHER_VARIABLES if f'"{name}"' not in code} == set()


def _resolves(dotted: str) -> bool:
    """``statefun_core.http.error_response``: a module, then attributes."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            if not hasattr(found, attribute):
                return False
            found = getattr(found, attribute)
        return True
    return False


def test_the_statefun_core_names_the_docs_name_exist() -> None:
    named = {
        name
        for path in markdown_files()
        for span in re.findall(r"`([^`\n]+)`", path.read_text(encoding="utf-8"))
        for name in re.findall(r"\bstatefun_core(?:\.\w+)+", span)
    }
    assert len(named) > 20, named
    assert {name for name in named if not _resolves(name)} == set()
