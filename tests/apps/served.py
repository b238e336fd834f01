"""The application a server test runs: ``SERVED_APP=<name> uvicorn tests.apps.served:app``.

Each is an example of docs/servers.md run as written, with ``functions`` the test functions
of :mod:`statefun_core.testing.endpoint` behind a handler whose request limit is ``LIMIT``.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from statefun_core import Limits, RequestReplyHandler
from statefun_core.testing.endpoint import make_functions

DOC = Path(__file__).resolve().parents[2] / "docs" / "servers.md"
LIMIT = 64 * 1024
#: the request limit of the application served, when not LIMIT
SERVED_LIMIT = int(os.environ.get("SERVED_LIMIT", LIMIT))
IMPORT = "from myproject.functions import functions\n"

#: Each example by name: the module it is recognised by in docs/servers.md.
EXAMPLES = {
    "asgi": "app = StatefunASGI(functions)",
    "wsgi": "app = StatefunWSGI(functions)",
    "fastapi": "from fastapi import",
    "starlette": "from starlette.applications import",
    "litestar": "from litestar import",
    "quart": "from quart import",
    "falcon": "import falcon\n",
    "lambda": "LambdaHandler(functions)",
    "cloud_functions": "import functions_framework\n",
}


def example(name: str) -> str:
    """The one code block of docs/servers.md that is the example ``name``."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    found = [block for block in blocks if EXAMPLES[name] in block]
    assert len(found) == 1, f"{len(found)} examples of {name} in {DOC}"
    assert IMPORT in found[0], found[0]
    return str(found[0])


def handler() -> RequestReplyHandler:
    functions = make_functions(interleave=True)
    return RequestReplyHandler(functions, limits=Limits(request_bytes=SERVED_LIMIT))


def load(name: str, functions: Any = None) -> ModuleType:
    """Run the example ``name`` as the module ``example_<name>`` (frameworks that read type
    hints look the module up)."""
    module = ModuleType(f"example_{name}")
    module.functions = handler() if functions is None else functions  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    exec(compile(example(name).replace(IMPORT, ""), f"{DOC}:{name}", "exec"), vars(module))
    return module


if "SERVED_APP" in os.environ:
    app = load(os.environ["SERVED_APP"]).app
