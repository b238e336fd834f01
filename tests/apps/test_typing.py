"""The examples of docs/servers.md type-check under ``mypy --strict`` as written, each with its
framework's own types: what a user of a typed project runs them through first."""

from __future__ import annotations

from pathlib import Path

import pytest

from .served import EXAMPLES, example

FUNCTIONS = "from statefun_core import StatefulFunctions\n\nfunctions = StatefulFunctions()\n"

#: servers.md's prose: ``falcon.asgi.App`` mounted with ``statefun_core.asgi.mount``.
FALCON_ASGI = """
import falcon.asgi

from statefun_core.asgi import StatefunASGI, mount

from myproject.functions import functions

api = falcon.asgi.App()
app = mount(api, "/statefun", StatefunASGI(functions))
"""


def test_every_example_type_checks(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api")
    for framework in ("fastapi", "litestar", "quart", "falcon"):
        pytest.importorskip(framework)
    (tmp_path / "myproject").mkdir()
    (tmp_path / "myproject" / "__init__.py").write_text("")
    (tmp_path / "myproject" / "functions.py").write_text(FUNCTIONS)
    modules = [tmp_path / "example_falcon_asgi.py"]
    modules[0].write_text(FALCON_ASGI)
    for name in EXAMPLES:
        module = tmp_path / f"example_{name}.py"
        module.write_text(example(name))
        modules.append(module)
    cache = f"--cache-dir={tmp_path / '.mypy_cache'}"
    out, err, status = api.run(["--strict", "--no-incremental", cache, *map(str, modules)])
    assert status == 0, out + err
