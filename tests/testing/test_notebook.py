"""Functions defined, bound again and tried in a real Jupyter kernel (ipykernel, driven by
nbclient), whose event loop runs while a cell does: the harness, both drivers of the handler,
and what a cell shows. Skipped without ipykernel and nbclient (the ``engine`` nox session
installs them)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

try:
    import ipykernel  # noqa: F401 - the kernel nbclient starts
    import nbclient
    from nbformat.v4 import new_code_cell, new_notebook
except ImportError as missing:
    pytest.skip(
        f"runs notebooks in a real kernel: needs ipykernel and nbclient ({missing})",
        allow_module_level=True,
    )


def run_cells(cells: list[str], folder: Path) -> list[list[dict[str, str]]]:
    """Run ``cells`` in order in one new kernel; each cell's outputs as ``{"stdout": ...}``,
    ``{"stderr": ...}``, ``{"shown": repr}`` or ``{"error": "Name: message"}``."""
    spec = folder / "kernels" / "kernels" / "statefun-test"
    spec.mkdir(parents=True)
    launch = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": launch, "language": "python"}))
    notebook = new_notebook(cells=[new_code_cell(cell) for cell in cells])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(folder / "kernels"))  # this interpreter's kernel
        patch.setenv("IPYTHONDIR", str(folder / "ipython"))  # no profile of the user's
        nbclient.NotebookClient(
            notebook, timeout=60, kernel_name="statefun-test", allow_errors=True
        ).execute()
    return [[_output(output) for output in cell.outputs] for cell in notebook.cells]


def _output(output: dict[str, object]) -> dict[str, str]:
    if output["output_type"] == "stream":
        return {str(output["name"]): str(output["text"])}
    if output["output_type"] == "error":
        return {"error": f"{output['ename']}: {output['evalue']}"}
    data = output["data"]
    assert isinstance(data, dict)
    return {"shown": data["text/plain"]}


BIND = """
@functions.bind("ex/counter", specs=[ValueSpec("count", IntType)])
def count(context, message):
    context.storage.count = (context.storage.count or 0) + 1
"""

AWAITING = """
import asyncio

@functions.bind("ex/waiter", specs=[ValueSpec("count", IntType)])
async def wait(context, message):
    await asyncio.sleep(0)
    context.storage.count = 7
"""


def test_cells_run_again_bind_again_and_each_driver_works_on_the_kernel_s_loop(
    tmp_path: Path,
) -> None:
    outputs = run_cells(
        [
            "from statefun_core import *\n"
            "from statefun_core.testing import Harness, wire\n"
            "functions = StatefulFunctions()",
            BIND,
            BIND,  # the cell run again: the same definition, bound again without a word
            "functions",
            "harness = Harness(functions)\nharness.send('ex/counter', 'a', str_value='x')",
            "harness.run(), harness.state('ex/counter', 'a')",
            AWAITING,
            "harness.send('ex/waiter', 'a', str_value='x').run()",
            "await harness.run_async(), harness.state('ex/waiter', 'a')",
            # the handler's sync driver needs no loop for a sync function, nor for an async one
            # that never awaits; its async one runs on the kernel's loop
            "async def never_awaits(context, message):\n"
            "    context.storage.count = 3\n"
            "functions.register('ex/quick', never_awaits, [ValueSpec('count', IntType)])\n"
            "handler = RequestReplyHandler(functions)\n"
            "wire.mutations(handler.handle_sync(wire.to_function("
            "'ex/quick', 'a', ['x'], {'count': None})))['count'] == wire.typed_value(IntType, 3)",
            "reply = await handler.handle_async(wire.to_function("
            "'ex/waiter', 'a', ['x'], {'count': None}))\n"
            "wire.mutations(reply)['count'] == wire.typed_value(IntType, 7)",
        ],
        tmp_path,
    )
    _, bound, again, shown, sent, ran, waiter, refused, awaited, quick, handled = outputs
    assert bound == again == []  # no warning
    assert shown == [{"shown": "StatefulFunctions(['ex/counter'])"}]
    assert sent == [
        {"shown": "Harness(StatefulFunctions(['ex/counter']), now_ms=0, batches=0, sent=0)"}
    ]
    assert ran == [{"shown": "(2, {'count': 1})"}]  # the discovery round, then the call
    assert waiter == []
    assert refused == [
        {
            "error": "AsyncFunctionInSyncContextError: ex/waiter is an async function that "
            "awaits, and run() was called inside a running event loop (a notebook cell, an "
            "async test): await harness.run_async() there (or advance_async(...))"
        }
    ]  # and nothing logged
    assert awaited == [{"shown": "(2, {'count': 7})"}]  # the message kept for it
    assert quick == handled == [{"shown": "True"}]
