"""The distributions as users get them. ``nox -s packaging`` builds each one (an sdist, then the
wheel from that sdist) into ``$STATEFUN_DIST`` and installs those wheels, not the checkout;
these tests read the files, and run the installed packages in a fresh interpreter that cannot
see the checkout (``python -I``, from a temporary folder)."""

from __future__ import annotations

import ast
import email.parser
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DIST = Path(os.environ.get("STATEFUN_DIST", ""))
pytestmark = pytest.mark.skipif(
    "STATEFUN_DIST" not in os.environ, reason="the built distributions: run nox -s packaging"
)

PYPROJECTS = [ROOT / "pyproject.toml", *sorted(ROOT.glob("integrations/*/pyproject.toml"))]
EXAMPLE_PLUGIN = ROOT / "examples/plugin/pyproject.toml"
FOLDERS = {
    re.search(r'^name = "(.+)"', pyproject.read_text(), re.M)[1]: pyproject.parent  # type: ignore[index]
    for pyproject in [*PYPROJECTS, ROOT / "local" / "pyproject.toml", EXAMPLE_PLUGIN]
}
#: what we publish; the session builds the example plugin too (users copy it)
NAMES = [name for name, folder in FOLDERS.items() if folder != EXAMPLE_PLUGIN.parent]
BUILT = list(FOLDERS)
#: the core's tests its sdist carries: what ``nox -s core engine`` runs, needing no checkout
CORE_TESTS = [
    "tests/__init__.py", "tests/conftest.py", "tests/core", "tests/engine", "tests/testing",
]  # fmt: skip


def _file_name(name: str) -> str:
    return name.replace("-", "_")


def _wheel(name: str) -> zipfile.ZipFile:
    (path,) = DIST.glob(f"{_file_name(name)}-*.whl")
    return zipfile.ZipFile(path)


def _wheel_metadata(name: str) -> email.message.Message:
    wheel = _wheel(name)
    (metadata,) = (n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    return email.parser.Parser().parsestr(wheel.read(metadata).decode())


def _dist_info(name: str) -> str:
    return f"{_file_name(name)}-{_wheel_metadata(name)['Version']}.dist-info"


def _run(tmp_path: Path, *args: str) -> str:
    """Run the session's Python isolated from the checkout: no cwd, no PYTHONPATH, no script
    folder on ``sys.path``; only what is installed."""
    done = subprocess.run(
        [sys.executable, "-I", *args], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_each_project_is_built_as_an_sdist_and_a_wheel() -> None:
    for name in BUILT:
        assert len(list(DIST.glob(f"{_file_name(name)}-*.tar.gz"))) == 1, name
        assert len(list(DIST.glob(f"{_file_name(name)}-*.whl"))) == 1, name


def test_every_project_builds_with_the_backend_the_session_checks() -> None:
    """The session builds with the oldest hatchling the root pyproject.toml accepts; an older
    one writes a license expression into metadata PyPI refuses. So each project (the example
    plugin too, which users copy) requires what the root requires."""
    backend = re.compile(r"^requires = (\[.*?\])", re.M)
    (root,) = backend.findall((ROOT / "pyproject.toml").read_text())
    for pyproject in [*PYPROJECTS[1:], ROOT / "local/pyproject.toml", EXAMPLE_PLUGIN]:
        assert backend.findall(pyproject.read_text()) == [root], pyproject


def test_versions_move_in_lockstep() -> None:
    """One version for all; each distribution requires ours at exactly that version, as a
    mismatched pair is untested; every extra of statefun-core names one of them."""
    core = _wheel_metadata("statefun-core")
    version = core["Version"]
    for name in NAMES:
        metadata = _wheel_metadata(name)
        assert metadata["Version"] == version, name
        assert metadata["Requires-Python"] == core["Requires-Python"], name
        for requirement in metadata.get_all("Requires-Dist") or []:
            ours = re.match(r"(statefun-[a-z]+)(.*?)(;|$)", requirement)
            if ours and "extra ==" not in requirement:
                assert ours[2].strip() == f"=={version}", (name, requirement)
            elif ours:
                assert ours[1] in NAMES, requirement
        package_init = _package_init_source(name)
        declared = re.search(r'^__version__ = "(.+)"', package_init, re.M)
        assert declared is None or declared[1] == version, name


def _package_init_source(name: str) -> str:
    wheel = _wheel(name)
    inits = [n for n in wheel.namelist() if n.count("/") == 1 and n.endswith("/__init__.py")]
    return "".join(wheel.read(n).decode() for n in inits)


def test_a_wheel_holds_its_packages_typed_and_nothing_else() -> None:
    for name in BUILT:
        files = _wheel(name).namelist()
        packages = {f.split("/")[0] for f in files if not f.split("/")[0].endswith(".dist-info")}
        assert packages, name
        for package in packages:
            assert f"{package}/py.typed" in files, (name, package)  # "Typing :: Typed"
        assert f"{_dist_info(name)}/licenses/LICENSE" in files, name
        junk = [f for f in files if re.search(r"(^|/)(tests?|__pycache__|\.nox)/|\.pyc$", f)]
        assert junk == [], (name, junk)


def test_each_entry_point_names_a_module_of_its_wheel() -> None:
    for name in BUILT:
        wheel = _wheel(name)
        files = set(wheel.namelist())
        entry_points = [n for n in files if n.endswith(".dist-info/entry_points.txt")]
        for line in wheel.read(entry_points[0]).decode().splitlines() if entry_points else []:
            if "=" not in line:
                continue
            module = line.split("=", 1)[1].strip().split(":")[0].replace(".", "/")
            assert {f"{module}.py", f"{module}/__init__.py"} & files, (name, line)


def test_an_sdist_holds_what_builds_it_and_no_local_files() -> None:
    for name in BUILT:
        files = _sdist_files(name)
        assert {"PKG-INFO", "pyproject.toml", "README.md", "LICENSE"} <= files, name
        local = r"(^|/)(\.nox|\.venv|__pycache__|build|dist)/|\.(pyc|db)$"
        junk = [f for f in files if re.search(local, f)]
        assert junk == [], (name, junk)


def _sdist_files(name: str) -> set[str]:
    (path,) = DIST.glob(f"{_file_name(name)}-*.tar.gz")
    with tarfile.open(path) as sdist:
        return {member.split("/", 1)[1] for member in sdist.getnames() if "/" in member}


class _Links(HTMLParser):
    """Where a page's links and images point."""

    def __init__(self) -> None:
        super().__init__()
        self.targets: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"a": "href", "img": "src"}.get(tag)
        self.targets += [value or "" for attribute, value in attrs if attribute == wanted]


def test_a_long_description_links_only_to_what_pypi_readers_can_reach() -> None:
    """PyPI shows the README away from the repository: a link relative to its folder (``docs/``,
    another README) leads nowhere there. Rendered by readme_renderer, as PyPI renders it."""
    import readme_renderer.markdown

    for name in BUILT:
        metadata = _wheel_metadata(name)
        assert metadata["Description-Content-Type"] == "text/markdown", name
        html = readme_renderer.markdown.render(metadata.get_payload(), variant="GFM")
        assert html, f"{name}: its long description did not render"
        links = _Links()
        links.feed(html)
        unreachable = [t for t in links.targets if not re.match(r"https://|http://|mailto:|#", t)]
        assert unreachable == [], (name, unreachable)


def _tested_pythons() -> list[str]:
    """``PYTHONS`` of noxfile.py: the versions the test matrix runs."""
    tree = ast.parse((ROOT / "noxfile.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "PYTHONS":
            return list(ast.literal_eval(node.value))
    raise AssertionError("noxfile.py sets no PYTHONS")


#: a dependency on the framework: its trove classifier
FRAMEWORKS = {
    "aiohttp": "Framework :: aiohttp",
    "django": "Framework :: Django",
    "flask": "Framework :: Flask",
    "opentelemetry-api": "Framework :: OpenTelemetry",
    "pydantic": "Framework :: Pydantic",
}


def test_each_distribution_says_what_pypi_users_look_for() -> None:
    """One license (the LICENSE file's), the Pythons the matrix tests, the frameworks it
    plugs into, typed, keywords to find it by and a ``test`` extra for the sdist's tests; only
    classifiers PyPI accepts."""
    from trove_classifiers import classifiers as known

    pythons = _tested_pythons()
    for name in BUILT:
        metadata = _wheel_metadata(name)
        classifiers = metadata.get_all("Classifier") or []
        assert [c for c in classifiers if c not in known] == [], name
        assert metadata["License-Expression"] == "Apache-2.0", name
        assert not [c for c in classifiers if c.startswith("License ::")], name  # PEP 639
        license_text = _wheel(name).read(f"{_dist_info(name)}/licenses/LICENSE").decode()
        assert "Apache License" in license_text and "Version 2.0" in license_text, name
        assert metadata["Requires-Python"] == f">={pythons[0]}", name
        versions = [c.rsplit(" ", 1)[1] for c in classifiers if re.search(r":: 3\.\d+$", c)]
        assert versions == pythons, name
        assert "Programming Language :: Python :: 3 :: Only" in classifiers, name
        assert "Typing :: Typed" in classifiers, name
        assert "statefun" in (metadata["Keywords"] or "").split(","), name
        assert "test" in (metadata.get_all("Provides-Extra") or []), name
        requirements = metadata.get_all("Requires-Dist") or []
        needed = {re.split(r"[ <>=!~;\[]", r, maxsplit=1)[0].lower() for r in requirements
                  if "extra ==" not in r}  # fmt: skip
        frameworks = {FRAMEWORKS[n] for n in needed if n in FRAMEWORKS}
        entry_points = importlib.metadata.distribution(name).entry_points
        if any(entry_point.group == "pytest11" for entry_point in entry_points):
            frameworks.add("Framework :: Pytest")
        assert frameworks - set(classifiers) == set(), name


def test_an_sdist_holds_its_tests_and_its_packages_marked_typed() -> None:
    """A distribution packager runs the tests from the sdist: each of the project's test files
    is in it (the core's own tests, ``CORE_TESTS``; each other project's ``tests/``)."""
    for name, folder in FOLDERS.items():
        tests = CORE_TESTS if folder == ROOT else ["tests"]
        listed = subprocess.run(["git", "ls-files", "--", *tests], cwd=folder,
                                capture_output=True, text=True, check=True).stdout  # fmt: skip
        expected = set(listed.split())
        files = _sdist_files(name)
        assert expected and expected - files == set(), (name, sorted(expected - files))
        for typed in (f for f in _wheel(name).namelist() if f.endswith("/py.typed")):
            assert typed in files or f"src/{typed}" in files, (name, typed)


@pytest.mark.parametrize("name", BUILT)
def test_an_sdist_s_tests_are_collected_from_the_unpacked_sdist(name: str, tmp_path: Path) -> None:
    """As a packager runs them: in the unpacked sdist, against the installed wheels and their
    ``test`` extra. Every module the tests import is there: none from the checkout."""
    (path,) = DIST.glob(f"{_file_name(name)}-*.tar.gz")
    with tarfile.open(path) as sdist:
        sdist.extractall(tmp_path, filter="data")
    (unpacked,) = tmp_path.iterdir()
    collect = ["-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests"]
    done = subprocess.run(
        [sys.executable, "-I", *collect], cwd=unpacked, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr
    assert re.search(r"^[1-9]\d* tests? collected", done.stdout, re.M), done.stdout[-4000:]


def test_the_installed_distributions_are_the_built_wheels() -> None:
    for name in BUILT:
        installed = importlib.metadata.distribution(name)
        assert installed.version == _wheel_metadata(name)["Version"], name
        direct_url = installed.read_text("direct_url.json")
        editable = direct_url and json.loads(direct_url).get("dir_info", {}).get("editable")
        assert not editable, f"{name} is installed editable from the checkout"


GREETER = """
import statefun_core
from statefun_core import *
from statefun_core.testing import wire

assert "site-packages" in statefun_core.__file__, statefun_core.__file__
functions = StatefulFunctions()

@functions.bind("com.example.fns/greeter", specs=[ValueSpec(name="seen_count", type=IntType)])
async def greet(ctx: Context, message: Message):
    name = message.as_string() or ""
    ctx.storage.seen_count = (ctx.storage.seen_count or 0) + 1
    ctx.send(message_builder(target_typename="com.example.fns/inbox", target_id=name,
                             str_value=f"Hello {name}!"))

request = wire.to_function("com.example.fns/greeter", "Jo", ["Jo"], {"seen_count": None})
reply = RequestReplyHandler(functions).handle_sync(request)
(sent,) = wire.messages(reply)
print(sent.message.as_string())
print(" ".join(sorted(name for name, _ in make_plugin_manager().list_name_plugin())))
"""


def test_the_installed_wheels_serve_a_function_and_find_the_plugins(tmp_path: Path) -> None:
    greeting, plugins = _run(tmp_path, "-c", GREETER).splitlines()
    assert greeting == "Hello Jo!"
    expected = {
        entry_point.name
        for name in NAMES
        for entry_point in importlib.metadata.distribution(name).entry_points
        if entry_point.group == "statefun"
    }
    assert expected and set(plugins.split()) >= expected


def test_the_pytest_plugin_and_the_console_script_are_installed(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(
        "def test_fixture(statefun_harness):\n    assert statefun_harness is not None\n"
    )
    _run(tmp_path, "-m", "pytest", "-p", "no:cacheprovider", "test_user.py")
    script = Path(sys.executable).parent / "statefun-local"
    done = subprocess.run([script, "--help"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0 and "usage: statefun-local" in done.stdout, done.stderr


TYPED_USER_CODE = """
from aiohttp import web
from flask import Blueprint
from typing import Any

from typing_extensions import assert_type

import statefun
import statefun_aiohttp
import statefun_django.urls
import statefun_flask
import statefun_local
import statefun_msgpack
import statefun_opentelemetry
import statefun_prometheus
import statefun_pydantic
import statefun_tornado
from statefun_core import StatefulFunctions, Type

functions = statefun.StatefulFunctions()
assert_type(functions, StatefulFunctions)
assert_type(statefun_aiohttp.create_app(functions), web.Application)
assert_type(statefun_flask.make_blueprint(functions), Blueprint)
assert_type(statefun_msgpack.msgpack_type("game/Scores"), Type[Any])
assert_type(statefun_prometheus.metrics_response(), tuple[bytes, str])
plugin = statefun_opentelemetry.OpenTelemetryPlugin()
routes = statefun_tornado.make_routes(functions, "/statefun")
urls = statefun_django.urls.statefun_urls("statefun")
versions = [statefun_local.__version__, statefun_pydantic.__version__]
"""


def test_the_installed_packages_are_typed_for_mypy_strict(tmp_path: Path) -> None:
    """Each package's ``py.typed`` is honoured: without it, importing the package is an error
    under ``--strict``, and ``assert_type`` fails on what would then be ``Any``."""
    (tmp_path / "user.py").write_text(TYPED_USER_CODE)
    _run(tmp_path, "-m", "mypy", "--strict", "--no-incremental", "user.py")
