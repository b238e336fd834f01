"""The README's notebook cells, run in a real Jupyter kernel (ipykernel, driven by nbclient):
started, run again, stopped, with the database readable afterwards and nothing left running.
Skipped without ipykernel and nbclient (the ``local`` nox session installs them)."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from ast import literal_eval
from pathlib import Path

import pytest

from statefun_core.testing.endpoint import free_port

try:
    import ipykernel  # noqa: F401 - the kernel nbclient starts
    import nbclient
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook
except ImportError as missing:
    pytest.skip(
        f"runs notebooks in a real kernel: needs ipykernel and nbclient ({missing})",
        allow_module_level=True,
    )

README = Path(__file__).resolve().parents[1] / "README.md"

MY_FUNCTIONS = """
from statefun_core import (
    IntType, StatefulFunctions, ValueSpec, kafka_egress_message, message_builder,
)

functions = StatefulFunctions()


@functions.bind("com.example.fns/greeter", specs=[ValueSpec("seen_count", IntType)])
def greeter(context, message):
    seen = context.storage.seen_count or 0
    context.storage.seen_count = seen + 1
    greeting = f"Hello {message.as_string()} for the {seen}th time!"
    context.send(message_builder("com.example.fns/inbox", message.as_string(), str_value=greeting))


@functions.bind("com.example.fns/inbox")
def inbox(context, message):
    context.send_egress(kafka_egress_message(
        "com.example/greets", topic="greetings", key=context.address.id, value=message.as_string()
    ))
"""


def readme_cells() -> list[str]:
    """The cells of the README's notebook block, split at its ``# %%`` lines."""
    text = README.read_text(encoding="utf-8")
    block = re.search(r"test_notebook\.py runs them.*?\n```python\n(.*?)\n```", text, re.S)
    assert block, "local/README.md: the notebook block (marked for test_notebook.py) is gone"
    cells = [cell.strip() for cell in re.split(r"^(?=# %%)", block[1], flags=re.M)]
    return [cell for cell in cells if cell]


def run_cells(cells: list[str], folder: Path) -> list[str]:
    """Run ``cells`` in order in one new kernel whose working directory is ``folder``; each
    cell's output as text (streams and the value it shows). A cell that raises fails the test
    with its traceback."""
    kernels = folder / "kernels"
    spec = kernels / "kernels" / "statefun-test"
    spec.mkdir(parents=True)
    launch = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": launch, "language": "python"}))
    notebook = new_notebook(cells=[new_code_cell(cell) for cell in cells])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(kernels))  # this interpreter's kernel, found first
        patch.setenv("IPYTHONDIR", str(folder / "ipython"))  # no profile of the user's
        client = nbclient.NotebookClient(
            notebook,
            timeout=60,
            kernel_name="statefun-test",
            resources={"metadata": {"path": str(folder)}},
        )
        client.execute()
    return [
        "".join(
            output.get("text", "") or output.get("data", {}).get("text/plain", "")
            for output in cell.outputs
        )
        for cell in nbformat.from_dict(notebook).cells
    ]


def test_the_readme_s_cells_start_run_again_and_stop_leaving_the_database(tmp_path: Path) -> None:
    start, send, stop = readme_cells()
    port = free_port()
    start = start.replace("8000", str(port))
    (tmp_path / "my_functions.py").write_text(MY_FUNCTIONS)
    threads = "import threading; sorted(t.name for t in threading.enumerate())"
    outputs = run_cells([threads, start, send, start, send, stop, threads], tmp_path)

    before, started, first, restarted, second, _, after = outputs
    assert started == restarted == "LocalRuntime('notebook.db', running, offline)"
    assert literal_eval(first)["seen_count"]["value"] == 1
    assert literal_eval(second)["seen_count"]["value"] == 2  # kept across the restart
    assert after == before  # no thread of ours left
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # the function server's port is free again
    state = subprocess.run(
        [sys.executable, "-m", "statefun_local", "state", "com.example.fns/greeter/Ann",
         "--db", str(tmp_path / "notebook.db")],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert state.returncode == 0, state.stderr
    assert "state seen_count: 2 " in state.stdout, state.stdout
