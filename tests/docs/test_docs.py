"""Every ``python`` block of every README and doc runs as written (``nox -s docs``).

Each block is a program of its own, run in a fresh process in a scratch directory holding
``fixtures/``: ``my_functions.py`` and ``proj/fns.py``, whose ``functions`` serve the greeter
(``com.example.fns/greeter``), stand for the reader's own functions. An HTML comment on the line
before a block's opening fence changes how it runs:

``<!-- docs-test: continue -->``
    the block goes on from the previous block of the same file: both run as one program.
``<!-- docs-test: file PATH -->``
    the block is the file ``PATH`` of the reader's project: it is written to the scratch
    directory (later blocks of the same file import or serve it) and not run by itself.
``<!-- docs-test: pytest -->``
    the program is a test module: pytest runs it, and its tests must pass.
``<!-- docs-test: serve PORT -->``
    the program (or a ``console`` block's one command) serves the function endpoint on
    ``127.0.0.1:PORT``: a greeter request POSTed to ``/statefun`` must be answered with its
    reply; then the process is stopped.

The docs put servers on port 8000; every block runs with a free port in its place (the same
in all blocks of a test), so that a server the developer left running there fails no test.
``<!-- docs-test: skip REASON -->``
    the block is not run (say why: e.g. a fragment of a file shown whole elsewhere).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from statefun_core import IntType
from statefun_core.testing import wire
from statefun_core.testing.endpoint import free_port

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures"
MARKER = re.compile(r"<!--\s*docs-test:\s*(\w+)\s*(.*?)\s*-->")
SKIPPED_FOLDERS = {"node_modules", "work", "target", "build", "dist"}


@dataclasses.dataclass
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    marker: str = ""
    argument: str = ""

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def markdown_files() -> list[Path]:
    """The repository's Markdown files, not those of tools' folders (hidden, build, work)."""
    return sorted(
        path for path in ROOT.rglob("*.md")
        if not any(part in SKIPPED_FOLDERS or part.startswith(".")
                   for part in path.relative_to(ROOT).parts[:-1])
    )  # fmt: skip


def blocks(path: Path) -> list[Block]:
    found = []
    lines = path.read_text(encoding="utf-8").split("\n")
    number = 0
    while number < len(lines):
        fence = re.match(r"^```(\w+)\s*$", lines[number])
        if fence is None:
            number += 1
            continue
        end = number + 1
        while not lines[end].startswith("```"):
            end += 1
        marker = MARKER.search(lines[number - 1]) if number else None
        found.append(Block(path, number + 1, fence.group(1), "\n".join(lines[number + 1:end]),
                           *(marker.groups() if marker else ())))  # fmt: skip
        number = end + 1
    return found


def programs() -> list[tuple[Block, list[Block]]]:
    """Each block to run, with the blocks before it that it continues or imports (files)."""
    found = []
    for path in markdown_files():
        before: list[Block] = []
        for block in blocks(path):
            runnable = block.language == "python" or block.marker == "serve"
            if not runnable:
                continue
            if block.marker not in ("", "continue", "file", "pytest", "serve", "skip"):
                raise ValueError(f"{block.name}: unknown docs-test marker {block.marker!r}")
            if block.marker == "continue":
                block_chain = [*before, block]
            else:
                block_chain = [*(b for b in before if b.marker == "file"), block]
            if block.marker != "file":
                found.append((block, block_chain))
            before = block_chain
    return found


PROGRAMS = programs()
DOCUMENTED_PORT = re.compile(r"\b8000\b")


@pytest.mark.parametrize(("block", "chain"), PROGRAMS, ids=[block.name for block, _ in PROGRAMS])
def test_block_runs(block: Block, chain: list[Block], tmp_path: Path) -> None:
    if block.marker == "skip":
        assert block.argument, f"{block.name}: say why a block is skipped"
        pytest.skip(block.argument)
    shutil.copytree(FIXTURES, tmp_path, dirs_exist_ok=True)
    port = str(free_port())
    program = []
    for part in chain:
        code = DOCUMENTED_PORT.sub(port, part.code)
        if part.marker == "file":
            target = tmp_path / part.argument
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(code + "\n")
        else:
            program.append(code)
    source = "\n\n".join(program) + "\n"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
        # a console block's python, gunicorn, ... are this environment's
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
    }
    if block.marker == "serve":
        assert DOCUMENTED_PORT.fullmatch(block.argument), f"{block.name}: serve on port 8000"
        serve(block, source, int(port), tmp_path, env)
        return
    if block.marker == "pytest":
        (tmp_path / "test_snippet.py").write_text(source)
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                   "test_snippet.py"]  # fmt: skip
    else:
        (tmp_path / "snippet.py").write_text(source)
        command = [sys.executable, str(tmp_path / "run_block.py"), "snippet.py"]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert result.returncode == 0, f"{block.name}\n{source}\n{result.stdout}\n{result.stderr}"


def serve(block: Block, source: str, port: int, workdir: Path, env: dict[str, str]) -> None:
    if block.language == "python":
        (workdir / "snippet.py").write_text(source)
        command = [sys.executable, str(workdir / "run_block.py"), "snippet.py"]
    else:
        lines = [line for line in DOCUMENTED_PORT.sub(str(port), block.code).splitlines()
                 if line.strip()]  # fmt: skip
        assert len(lines) == 1, f"{block.name}: a served console block is one command"
        command = ["bash", "-c", f"exec {lines[0].removeprefix('$ ')}"]
    log = workdir / "server.log"
    with log.open("w") as output:
        process = subprocess.Popen(command, cwd=workdir, env=env, stdout=output,
                                   stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        reply = _post_greeter(port, process)
        assert wire.mutations(reply) == {"seen_count": wire.typed_value(IntType, 1)}
    except BaseException:
        print(f"--- {block.name}\n{source}\n--- its output\n{log.read_text()}", file=sys.stderr)
        raise
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)  # the server and its workers
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _post_greeter(port: int, process: subprocess.Popen[bytes]) -> bytes:
    body = wire.to_function("com.example.fns/greeter", "Ann", ["Ann"], {"seen_count": None})
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/statefun", data=body,
        headers={"Content-Type": "application/octet-stream"},
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, f"the server exited with {process.returncode}"
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return bytes(response.read())
        except urllib.error.HTTPError:
            raise
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
