"""What a cold start imports: a Lambda function's module makes its handler and answers its
first request in a fresh interpreter, without the modules it does not use."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

from google.protobuf.internal import api_implementation

import statefun_core
from statefun_core import IntType
from statefun_core.testing import wire
from statefun_core.testing.aws_lambda import gateway_event

FUNCTIONS = """
from statefun_core import IntType, StatefulFunctions, ValueSpec

functions = StatefulFunctions()

@functions.bind("example/counter", specs=[ValueSpec("count", IntType)])
async def counter(context, message):  # async, but its code never awaits: run with no loop
    context.storage.count = (context.storage.count or 0) + message.as_int()

@functions.bind("example/sleeper", specs=[ValueSpec("count", IntType)])
async def sleeper(context, message):
    import asyncio  # here: the module's own import would hide the handler's

    await asyncio.sleep(0)
    context.storage.count = (context.storage.count or 0) + message.as_int()
"""

CHILD = """if True:
    import json, sys
    sys.path.insert(0, {root!r})
    import pluggy  # what a dependency imports (pluggy 1.2 imports importlib.metadata) is not ours
    before = set(sys.modules)
    from statefun_core.aws_lambda import LambdaHandler
    namespace = {{}}
    exec({functions!r}, namespace)
    statefun = LambdaHandler(namespace["functions"])
    first = statefun(json.loads({counter!r}), None)
    imported = sorted(set(sys.modules) - before)
    second = statefun(json.loads({sleeper!r}), None)
    print(json.dumps({{"imported": imported, "first": first, "second": second}}))
"""


def run_cold(code: str) -> dict[str, object]:
    env = {**os.environ, "STATEFUN_DISABLE_PLUGIN_AUTOLOAD": "1"}  # the core's imports alone
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, object] = json.loads(done.stdout)
    return found


def protobuf_pool_imports_descriptor_pb2() -> bool:
    """Whether protobuf's own descriptor pool imports ``descriptor_pb2`` to add a file: the
    python backend parses each file with it, and so does upb's pool from protobuf 7.37. Then
    no SDK can build its messages without it; otherwise ours must not import it."""
    if api_implementation.Type() == "python":
        return True
    probe = (
        "import sys\n"
        "from google.protobuf import descriptor_pool\n"
        "descriptor_pool.DescriptorPool().AddSerializedFile(b'\\n\\x0bprobe.proto')\n"
        "print('google.protobuf.descriptor_pb2' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.split() == ["True"]


def test_a_first_reply_imports_only_what_it_uses() -> None:
    """An async function that never awaits is answered with no event loop, so asyncio is not
    imported for it; the statefun messages are built without ``descriptor_pb2``; with the
    installed plugins not loaded, the entry points are not read (no ``importlib.metadata``).
    A function that awaits then imports asyncio and is answered too."""

    def request(typename: str) -> str:
        body = wire.to_function(typename, "a", [2], {"count": None})
        return json.dumps(gateway_event(body))

    code = CHILD.format(
        root=str(Path(statefun_core.__file__).parents[1]),
        functions=FUNCTIONS,
        counter=request("example/counter"),
        sleeper=request("example/sleeper"),
    )
    found = run_cold(code)
    imported = found["imported"]
    assert isinstance(imported, list)
    assert "asyncio" not in imported
    if not protobuf_pool_imports_descriptor_pb2():
        assert "google.protobuf.descriptor_pb2" not in imported
    assert "importlib.metadata" not in imported
    assert "importlib.resources" not in imported
    for reply in ("first", "second"):
        response = found[reply]
        assert isinstance(response, dict)
        assert response["statusCode"] == 200, response
        body = base64.b64decode(response["body"])
        assert wire.mutations(body) == {"count": wire.typed_value(IntType, 2)}
