"""examples/aiohttp/app.py runs and serves the guide's greeter on $PORT."""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path

import pytest

from statefun_core.testing import wire
from statefun_core.testing.endpoint import GREETER, INBOX, free_port, greetings, request, running

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "aiohttp" / "app.py"
README = Path(__file__).resolve().parents[1] / "README.md"
#: the functions the snippets import (``from my_functions import functions``)
MY_FUNCTIONS = "from statefun_core import StatefulFunctions\n\nfunctions = StatefulFunctions()\n"


@pytest.mark.skipif(not EXAMPLE.exists(), reason="runs from a checkout of the repository")
def test_example_serves_the_greeter() -> None:
    port = free_port()
    with running([sys.executable, str(EXAMPLE)], port, env={**os.environ, "PORT": str(port)}):
        body = wire.to_function(GREETER, "Ann", ["Ann"], {"seen_count": 1})
        status, _, reply = request(port, "/statefun", body)
    assert status == 200
    assert greetings(reply) == (2, [(INBOX, "Ann", "Hello Ann for the 1th time!")])


@pytest.mark.skipif(not EXAMPLE.exists(), reason="runs from a checkout of the repository")
def test_the_example_and_the_snippets_type_check(tmp_path: Path) -> None:
    """The example (with the greeter it serves), the README's snippets and docs/security.md's
    aiohttp one pass ``mypy --strict`` as written: what a typed project runs them through."""
    api = pytest.importorskip("mypy.api")
    security = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    snippets = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    snippets += [
        block
        for block in re.findall(r"```python\n(.*?)```", security, re.S)
        if block.startswith("# aiohttp")
    ]
    assert len(snippets) > 2
    (tmp_path / "my_functions.py").write_text(MY_FUNCTIONS)
    modules = [str(EXAMPLE), str(ROOT / "examples" / "greeter_functions.py")]
    for number, snippet in enumerate(snippets):
        module = tmp_path / f"snippet_{number}.py"
        module.write_text(snippet)
        modules.append(str(module))
    cache = f"--cache-dir={tmp_path / '.mypy_cache'}"
    out, err, status = api.run(["--strict", "--no-incremental", cache, *modules])
    assert status == 0, out + err


@pytest.mark.skipif(not EXAMPLE.exists(), reason="runs from a checkout of the repository")
def test_the_greeter_under_gunicorn_as_deployment_md_runs_it() -> None:
    """docs/deployment.md's gunicorn command for examples/greeter/app.py, as written but for
    the address: aiohttp's worker takes an application or an async factory, not make_app."""
    pytest.importorskip("gunicorn")
    deployment = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    (command,) = re.findall(r"`(gunicorn [^`]*aiohttp\.GunicornWebWorker[^`]*)`", deployment)
    port = free_port()
    argv = [f"127.0.0.1:{port}" if arg == "0.0.0.0:8000" else arg for arg in shlex.split(command)]
    argv[0] = str(Path(sys.executable).with_name("gunicorn"))
    with running(argv, port, cwd=ROOT / "examples" / "greeter"):
        body = wire.to_function("com.example.fns/greeter", "Ann", ["Ann"], {"seen_count": 1})
        status, _, reply = request(port, "/statefun", body)
    assert status == 200
    assert greetings(reply) == (2, [(INBOX, "Ann", "Hello Ann for the 1th time!")])
