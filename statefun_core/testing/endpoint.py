"""Test an HTTP endpoint that serves StateFun functions: yours, or a web framework integration.

Serve the standard test functions, start the server for real on 127.0.0.1 and send it the
runtime's bytes::

    from statefun_core.testing import endpoint, wire

    port = endpoint.free_port()
    with endpoint.running(["gunicorn", "-b", f"127.0.0.1:{port}", "myapp:app"], port):
        body = wire.to_function(endpoint.GREETER, "ann", ["ann"], endpoint.NEW)
        status, headers, reply = endpoint.request(port, "/statefun", body)
    seen_count, sent = endpoint.greetings(reply)
    assert sent == [(endpoint.INBOX, "ann", "Hello ann for the 1th time!")]

:class:`FailureRecorder` and :class:`HeaderRecorder` are plugins that keep what the hooks saw.
:func:`check_endpoint` checks a running endpoint that serves :func:`make_functions`: replies,
state discovery, batches, error statuses and concurrent requests (``ENDPOINT_CHECKS`` one by one).
Standard library and ``statefun_core`` only: no web framework is imported here.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import IO, Any, Callable, Optional, Union

from ..context import Context
from ..core import ValueSpec
from ..engine import StateSpec
from ..errors import StatefunError
from ..functions import StatefulFunctions
from ..messages import Message, message_builder
from ..plugins import BatchEvent, Endpoint, EndpointResponse, header, hookimpl
from ..types import IntType
from . import wire

__all__ = [
    "BLOCKING",
    "BROKEN_BODIES",
    "EDGE_CHECKS",
    "ENDPOINT_CHECKS",
    "FAILING",
    "GREETER",
    "INBOX",
    "NEW",
    "FailureRecorder",
    "HeaderRecorder",
    "PingEndpoints",
    "check_broken_body_is_400",
    "check_endpoint",
    "check_expect_continue",
    "check_plugin_endpoints",
    "check_plugin_endpoints_answer_head",
    "check_reply_headers",
    "check_request_limit",
    "check_tiny_chunks",
    "free_port",
    "greetings",
    "make_functions",
    "post_raw",
    "request",
    "running",
    "serving_in_a_thread",
]

GREETER = "com.example.fns/greeter"
INBOX = "com.example.fns/inbox"
FAILING = "com.example.fns/failing"
BLOCKING = "com.example.fns/blocking"
#: The greeter's state for a new address: registered, no value yet.
NEW: Mapping[str, None] = {"seen_count": None}


# --- the functions ------------------------------------------------------------------------


def make_functions(*, interleave: bool = False, blocking: bool = False) -> StatefulFunctions:
    """The guide's greeter (async; it greets ``INBOX``) and ``FAILING``, which always raises.

    ``interleave=True`` makes the greeter yield to the event loop between reading and writing
    its state, so that concurrent requests on one loop interleave. ``blocking=True`` adds
    ``BLOCKING`` (bound with ``blocking=True``), which greets ``INBOX`` with the name of the
    thread it ran on.
    """
    functions = StatefulFunctions()

    @functions.bind(GREETER, specs=[ValueSpec(name="seen_count", type=IntType)])
    async def greeter(context: Context, message: Message) -> None:
        name = message.as_string() or ""
        seen = (context.storage.seen_count or 0) + 1
        if interleave:
            await asyncio.sleep(0)
        context.storage.seen_count = seen
        context.send(message_builder(INBOX, name, str_value=f"Hello {name} for the {seen}th time!"))

    @functions.bind(FAILING)
    def failing(context: Context, message: Message) -> None:
        raise RuntimeError("the function broke on purpose")

    if blocking:

        @functions.bind(BLOCKING, blocking=True)
        def blocks(context: Context, message: Message) -> None:
            thread = threading.current_thread().name
            context.send(message_builder(INBOX, context.address.id, str_value=thread))

    return functions


def greetings(reply: bytes) -> tuple[Optional[int], list[tuple[str, str, Optional[str]]]]:
    """``(seen_count written or None, [(target typename, target id, text), ...])`` of a reply."""
    seen = wire.mutations(reply).get("seen_count")
    sent = [(m.target.typename, m.target.id, m.message.as_string()) for m in wire.messages(reply)]
    return (None if seen is None else IntType.serializer().deserialize(seen.value)), sent


# --- plugins that record what the hooks saw -----------------------------------------------


class FailureRecorder:
    """A plugin: keeps ``(error class, status, header)`` of each failed request in ``failures``
    and its batch (``None`` when rejected before one existed) in ``batches``.

    ``header`` (default ``X-Request-Id``, matched in any case) is ``None`` when absent.
    """

    def __init__(self, header: str = "X-Request-Id") -> None:
        self.header = header
        self.failures: list[tuple[type[BaseException], Optional[int], Optional[str]]] = []
        self.batches: list[Optional[BatchEvent]] = []

    @hookimpl
    def statefun_request_failed(
        self, error: BaseException, batch: Optional[BatchEvent], headers: Mapping[str, str]
    ) -> None:
        status = error.status if isinstance(error, StatefunError) else None
        self.failures.append((type(error), status, header(headers, self.header)))
        self.batches.append(batch)


class HeaderRecorder:
    """A plugin: keeps the named headers each batch started with, one dict per batch in
    ``headers`` (``{name: value or None}``, names as given, matched in any case)."""

    def __init__(self, *names: str) -> None:
        self.names = names
        self.headers: list[dict[str, Optional[str]]] = []

    @hookimpl
    def statefun_batch_started(self, batch: BatchEvent) -> None:
        self.headers.append({name: header(batch.headers, name) for name in self.names})


class PingEndpoints:
    """A plugin with endpoints of two methods at one path, ``GET /ping`` (200, ``got``) and
    ``POST /ping`` (202, ``posted``), and ``POST /pong`` (202, ``ponged``) alone: each method
    must find its own endpoint, and ``HEAD`` only a ``GET`` one."""

    @hookimpl
    def statefun_endpoints(self) -> list[Endpoint]:
        def answer(status: int, text: bytes) -> Callable[[Mapping[str, str]], EndpointResponse]:
            return lambda headers: EndpointResponse(status, {"Content-Type": "text/plain"}, text)

        return [
            Endpoint("GET", "/ping", answer(200, b"got")),
            Endpoint("POST", "/ping", answer(202, b"posted")),
            Endpoint("POST", "/pong", answer(202, b"ponged")),
        ]


# --- a real server ------------------------------------------------------------------------


def free_port() -> int:
    """A port of 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _Server:
    """A server :func:`running` has started and not yet stopped: its command, process and
    output so far (stdout and stderr, in a file: a chatty server never blocks on a full pipe)."""

    def __init__(self, command: Sequence[str], process: subprocess.Popen[bytes], output: IO[bytes]):
        self.command = list(command)
        self.process = process
        self._output = output

    def title(self) -> str:
        code = self.process.poll()
        state = "running" if code is None else f"exited with {code}"
        return f"output of the server, pid {self.process.pid} ({state}): {' '.join(self.command)}"

    def output(self, lines: Optional[int] = None) -> str:
        """What the server has written: all of it, or its last ``lines`` lines."""
        # pread, not seek and read: the server writes at this file's offset, which it shares
        fd = self._output.fileno()
        text = os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")
        return text if lines is None else "\n".join(text.splitlines()[-lines:])


#: The servers :func:`running` serves now, oldest first. The pytest plugin adds each one's
#: output to the report of a test that fails while it runs: a module's server outlives the
#: failing test, so its block does not see the failure.
_serving: list[_Server] = []

#: POSIX: a server runs in a process group of its own, stopped whole (gunicorn's workers too).
_GROUPS = hasattr(os, "killpg")


@contextmanager
def running(
    command: Sequence[str],
    port: Union[int, str, os.PathLike[str]],
    *,
    cwd: Union[str, os.PathLike[str], None] = None,
    env: Optional[Mapping[str, str]] = None,
    timeout: float = 30,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` in a subprocess until 127.0.0.1:``port`` accepts connections (or, for a
    path, the unix socket there does); yields the process. On exit, the process and those it
    started (its process group, on POSIX: gunicorn's or hypercorn's workers) are terminated,
    and killed if it has not exited 10 seconds later. Raises ``RuntimeError`` with the
    server's output if it exits first, or if it does not listen within ``timeout`` seconds;
    when the block fails, the server's output is printed to stderr (pytest shows it with the
    failure). Under pytest, a test that fails while the server runs (one shared by a module's
    tests) shows its output too, in a section of the report."""
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(
            list(command), cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=_GROUPS,
        )  # fmt: skip
        server = _Server(command, process, output)
        try:
            _wait_until_listening(server, port, timeout)
            _serving.append(server)
            try:
                yield process
            except BaseException:
                print(f"--- {server.title()}\n{server.output()}", file=sys.stderr)
                raise
        finally:
            if server in _serving:
                _serving.remove(server)
            _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group, SIGKILL after 10 seconds. Only while the server
    is not reaped: until then, its process group's id cannot be another's."""
    if process.poll() is None:
        _signal(process, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            _signal(process, signal.SIGKILL)
            process.wait()


def _signal(process: subprocess.Popen[bytes], number: int) -> None:
    if _GROUPS:
        os.killpg(process.pid, number)
    else:  # pragma: no cover - not POSIX
        process.send_signal(number)


@contextmanager
def serving_in_a_thread(server: Any) -> Iterator[int]:
    """Serve ``server``, a ``socketserver`` server bound to 127.0.0.1 (Werkzeug's or Django's
    development server), in a thread of this process: its port while it serves."""
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _wait_until_listening(
    server: _Server, port: Union[int, str, os.PathLike[str]], timeout: float
) -> None:
    process = server.process
    where = f"port {port}" if isinstance(port, int) else f"the unix socket {port}"
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        try:
            _connect(port).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                problem = f"did not listen on {where} within {timeout} seconds"
                break
            time.sleep(0.05)
    else:
        problem = f"exited with {process.returncode}"
    raise RuntimeError(f"the server {problem}:\n{server.output()}")


def _connect(port: Union[int, str, os.PathLike[str]]) -> socket.socket:
    if isinstance(port, int):
        return socket.create_connection(("127.0.0.1", port), timeout=0.2)
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.settimeout(0.2)
        sock.connect(os.fspath(port))
    except BaseException:
        sock.close()
        raise
    return sock


def request(
    port: int,
    path: str,
    body: Optional[bytes] = None,
    method: str = "POST",
    headers: Optional[Mapping[str, str]] = None,
    *,
    chunked: bool = False,
) -> tuple[int, dict[str, str], bytes]:
    """One request to 127.0.0.1:``port`` on a new connection: ``(status, headers, body)``.

    A body goes as ``application/octet-stream``, as the runtime sends it, unless ``headers``
    say otherwise; ``chunked=True`` sends it in chunks, without a ``Content-Length``. The
    response's header names come in their usual case (``Content-Type``), whatever case the server
    sent (servers built on hyper send them in lower case).
    """
    sent = {"Content-Type": "application/octet-stream"} if body is not None else {}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        sending: Union[bytes, Iterator[bytes], None] = body
        if chunked and body is not None:
            sending = (body[i : i + 1024] for i in range(0, len(body), 1024))
        # answered and closed before the whole body was sent (refused early): read the answer
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.request(
                method, path, sending, {**sent, **(headers or {})}, encode_chunked=chunked
            )
        response = connection.getresponse()
        headers = {_canonical(name): value for name, value in response.getheaders()}
        return response.status, headers, response.read()
    finally:
        connection.close()


def post_raw(
    port: int, path: str, framing: str, body: bytes, *, fin: bool = True
) -> tuple[int, str, bytes]:
    """POST ``body`` to 127.0.0.1:``port`` ``path`` as it is after the headers (``framing``,
    a ``Content-Length`` or ``Transfer-Encoding`` header, says how long it is), then end the
    sending side (FIN) as a client that stops does, unless ``fin=False``: ``(status,
    Content-Type, body)`` of the response, ``(0, "", b"")`` when there is none."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Content-Type: application/octet-stream\r\nX-Request-Id: raw\r\n{framing}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head.encode() + body)
        if fin:
            sock.shutdown(socket.SHUT_WR)
        response = b""
        try:
            while data := sock.recv(65536):
                response += data
        except ConnectionResetError:
            pass  # refused before the body's end
    if not response:
        return 0, "", b""
    head_bytes, _, text = response.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    headers = {name.lower(): value for name, value in (line.split(": ", 1) for line in lines[1:])}
    if headers.get("transfer-encoding", "").lower() == "chunked":  # a reply given no length
        text = _dechunked(text)
    return int(lines[0].split()[1]), headers.get("content-type", ""), text


def _dechunked(data: bytes) -> bytes:
    """The content of a chunked body, as much of it as arrived."""
    content = []
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if not size:
            break
        content.append(data[:size])
        data = data[size + 2 :]
    return b"".join(content)


_SHORT = wire.to_function(GREETER, "Ann", ["Ann"], {"seen_count": 4})

#: Requests whose body the server cannot hand over whole, by name: ``(framing, body)`` for
#: :func:`post_raw`. The last one is a greeting, which must not run.
BROKEN_BODIES: Mapping[str, tuple[str, bytes]] = {
    "chunk-size-not-hex": ("Transfer-Encoding: chunked", b"5\r\nabcde\r\nZZ\r\nabc\r\n0\r\n\r\n"),
    "chunked-cut-off": ("Transfer-Encoding: chunked", b"64\r\n" + b"a" * 10),
    "shorter-than-content-length": (f"Content-Length: {len(_SHORT) + 50}", _SHORT),
}


def check_broken_body_is_400(port: int, path: str, name: str) -> None:
    """Check that the body ``BROKEN_BODIES[name]`` is answered by the endpoint's own 400 (not
    the framework's 500 page), in plain text without a traceback."""
    status, content_type, text = post_raw(port, path, *BROKEN_BODIES[name])
    assert status == 400, (status, content_type, text[:200])
    assert content_type == "text/plain; charset=utf-8"
    assert b"Traceback" not in text and b"\n" not in text, text


def _canonical(name: str) -> str:
    return "-".join(part.capitalize() for part in name.split("-"))


# --- checks of a running endpoint that serves make_functions() ----------------------------


def check_greeter_reply(port: int, path: str) -> None:
    body = wire.to_function(GREETER, "Ann", ["Ann"], {"seen_count": 4})
    status, headers, reply = request(port, path, body)
    assert status == 200, status
    assert headers["Content-Type"] == "application/octet-stream", headers
    assert greetings(reply) == (5, [(INBOX, "Ann", "Hello Ann for the 5th time!")])


def check_state_discovery(port: int, path: str) -> None:
    status, headers, reply = request(port, path, wire.to_function(GREETER, "Ann", ["Ann"]))
    assert status == 200, status
    assert headers["Content-Type"] == "application/octet-stream", headers
    assert wire.missing_states(reply) == [StateSpec("seen_count", IntType.typename)]


def check_batch(port: int, path: str) -> None:
    _, _, reply = request(
        port, path, wire.to_function(GREETER, "Bo", ["Bo", "Bo"], {"seen_count": 1})
    )
    seen, sent = greetings(reply)
    assert seen == 3, seen
    assert [text for _, _, text in sent] == [
        "Hello Bo for the 2th time!",
        "Hello Bo for the 3th time!",
    ]


def _check_error(
    port: int, path: str, method: str, body: Optional[bytes], status: int, *, chunked: bool = False
) -> bytes:
    got, headers, text = request(port, path, body, method=method, chunked=chunked)
    assert got == status, f"{method} {body!r:.40}: {got}, not {status}"
    assert headers["Content-Type"] == "text/plain; charset=utf-8", headers
    if status == 405:
        assert headers.get("Allow") == "POST", headers
    assert 0 < len(text) < 200 and b"\n" not in text, text  # one short line
    assert b"Traceback" not in text, text
    return text


def check_error_statuses(port: int, path: str) -> None:
    """400 for a malformed body, 404 for an unknown function, 405 for GET, 500 for a function
    that raises: each a short ``text/plain`` line without a traceback."""
    unknown = wire.to_function("com.example.fns/nobody", "x", ["x"], NEW)
    _check_error(port, path, "POST", b"\xff\xff\xff", 400)
    _check_error(port, path, "POST", unknown, 404)
    _check_error(port, path, "GET", None, 405)
    _check_error(port, path, "POST", wire.to_function(FAILING, "x", ["x"]), 500)


def check_request_limit(
    port: int, path: str, limit: int, setting: Optional[str] = None, *, chunked: bool = False
) -> None:
    """A request over ``limit`` bytes is 413, a short ``text/plain`` line that names
    ``setting`` (the limit that refused it), when given, and claims no size the body is not
    over (a chunked body's length is unknown: "0 bytes" is wrong); with another method it is
    the endpoint's 405 (the method is judged before the length). ``chunked=True`` sends it
    without a ``Content-Length``."""
    body = wire.to_function(GREETER, "Ann", ["x" * limit], NEW)
    for method in ("PUT", "DELETE"):
        _check_error(port, path, method, body, 405, chunked=chunked)
    text = _check_error(port, path, "POST", body, 413, chunked=chunked)
    if setting is not None:
        assert f"over the limit of {limit} bytes ({setting})".encode() in text, text
    claimed = re.search(rb"is (\d+) bytes", text)
    assert claimed is None or int(claimed.group(1)) > limit, text


def check_expect_continue(port: int, path: str, limit: int) -> None:
    """A client that asks ``Expect: 100-continue`` before a body over ``limit`` gets the 413
    at once, not a ``100 Continue`` that tells it to upload the body, with ``Connection:
    close`` (RFC 9110, 10.1.1: the client sends no body after it, and a server waiting for
    that body would take the client's next request on the connection for it); one within the
    limit gets the ``100``, then its reply."""
    body = wire.to_function(GREETER, "Fay", ["Fay"], NEW)
    for length, body_sent, statuses in ((limit + 1, b"", [413]), (len(body), body, [100, 200])):
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n"
            "Expect: 100-continue\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(head.encode())
            stream = sock.makefile("rb")
            status = int(stream.readline().split()[1])
            assert status == statuses[0], f"Content-Length {length}: {status} first"
            if status == 413:
                fields = []
                while line := stream.readline().strip():
                    fields.append(line.decode("latin-1").lower().replace(" ", ""))
                assert "connection:close" in fields, fields
            if status == 100:
                while stream.readline().strip():  # the 100's own (empty) header block
                    pass
                sock.sendall(body_sent)
                final = int(stream.readline().split()[1])
                assert final == statuses[1], f"after the 100: {final}"


def check_concurrent_requests(port: int, path: str) -> None:
    """100 requests from 32 threads at once: each is answered 200 with its own reply. A
    failure names every request that went wrong and how (its status and the start of its
    body, a reply that is not its own, or the client's error: a timeout, a refused or reset
    connection), not only the first one."""

    def greet(i: int) -> Optional[str]:
        """What went wrong with request ``i``, or ``None``."""
        name = f"user-{i}"
        body = wire.to_function(GREETER, name, [name], {"seen_count": i})
        try:
            status, _, reply = request(port, path, body)
        except (OSError, http.client.HTTPException) as error:  # a timeout is an OSError
            return f"{type(error).__name__}: {error}"
        if status != 200:
            return f"status {status}: {reply[:100]!r}"
        try:
            got = greetings(reply)
        except Exception as error:  # a body that is no ToFunction response
            return f"an unreadable reply ({type(error).__name__}): {reply[:100]!r}"
        expected = (i + 1, [(INBOX, name, f"Hello {name} for the {i + 1}th time!")])
        return None if got == expected else f"not its own reply: {got}"

    with ThreadPoolExecutor(max_workers=32) as pool:
        outcomes = list(pool.map(greet, range(100)))
    wrong = {i: outcome for i, outcome in enumerate(outcomes) if outcome is not None}
    assert not wrong, f"{len(wrong)} of 100 concurrent requests failed:\n" + "\n".join(
        f"request {i}: {outcome}" for i, outcome in wrong.items()
    )


#: Each check by name, for ``pytest.mark.parametrize``; each takes ``(port, path)``.
ENDPOINT_CHECKS: Mapping[str, Callable[[int, str], None]] = {
    "greeter_reply": check_greeter_reply,
    "state_discovery": check_state_discovery,
    "batch": check_batch,
    "error_statuses": check_error_statuses,
    "concurrent_requests": check_concurrent_requests,
}


# --- the edges: what the runtime does not send, but a server must get right --------------


def check_chunked_body(port: int, path: str) -> None:
    """A body sent in chunks, without a ``Content-Length``, is read whole."""
    name = "Cy" * 1000  # a few chunks
    body = wire.to_function(GREETER, "Cy", [name], {"seen_count": 1})
    status, _, reply = request(port, path, body, chunked=True)
    assert status == 200, (status, reply[:200])
    assert greetings(reply) == (2, [(INBOX, name, f"Hello {name} for the 2th time!")])


def check_tiny_chunks(port: int, path: str, pid: int, size: int = 1024 * 1024) -> None:
    """A body of about ``size`` bytes sent in 2-byte chunks (the server's limit must allow it)
    is read whole, and the server's process ``pid`` holds it about once: its peak resident
    memory (Linux's ``/proc``) grows by less than 32 times ``size``. A server may hand each
    chunk over as it came; kept as a list of them, such a body took some 65 times its size."""
    status, _, _ = request(port, path, wire.to_function(GREETER, "Tiny", ["Tiny"], NEW))
    assert status == 200, status  # what a first request takes is in the peak before
    before = _peak_memory(pid)
    name = "Tiny" + " " * size  # the greeter greets it: the reply is as long
    body = wire.to_function(GREETER, "Tiny", [name], NEW)
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            "Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
            .encode()
        )  # fmt: skip
        for start in range(0, len(body), 65536):
            block = body[start : start + 65536]
            sock.sendall(b"".join(b"%x\r\n%s\r\n" % (len(block[i : i + 2]), block[i : i + 2])
                                  for i in range(0, len(block), 2)))  # fmt: skip
        sock.sendall(b"0\r\n\r\n")
        response = b""
        while data := sock.recv(65536):
            response += data
    assert response.split()[1] == b"200", response[:300]
    growth = _peak_memory(pid) - before
    # the body, its parse and the reply take some 14 times its size
    assert growth < 32 * size, f"a body of {size // 1024} KiB took {growth // 1024} KiB more"


def _peak_memory(pid: int) -> int:
    """The most memory the process ``pid`` has held (its peak resident set), in bytes."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")


def check_every_other_method(port: int, path: str) -> None:
    """Any method but POST, also one the framework does not route, is the endpoint's 405."""
    for method in ("PUT", "DELETE", "TRACE", "PROPFIND"):
        _check_error(port, path, method, None, 405)


def check_connection_after_refusal(port: int, path: str) -> None:
    """After a refused request (405, 400) the connection still serves the next request, or
    the response said ``Connection: close``."""
    greet = wire.to_function(GREETER, "Di", ["Di"], NEW)
    for method, body in (("GET", None), ("TRACE", None), ("PUT", b"abc"), ("POST", b"\xff")):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            connection.request(method, path, body)
            refused = connection.getresponse()
            refused.read()
            try:  # on the same connection, or a new one if the response said it would close
                connection.request("POST", path, greet)
                status = connection.getresponse().status
            except (http.client.HTTPException, ConnectionError) as error:
                raise AssertionError(
                    f"after {method} ({refused.status}) the connection was closed without "
                    f"Connection: close: {error!r}"
                ) from error
            assert status == 200, f"after {method} ({refused.status}): {status}"
        finally:
            connection.close()


def check_no_versions(port: int, path: str) -> None:
    """No response names a version of the server (``Server: name/1.2``, ``name 1.2``; a name
    with a digit, ``hypercorn-h11``, is no version)."""
    greet = wire.to_function(GREETER, "Ed", ["Ed"], NEW)
    for method, body in (("POST", greet), ("POST", b"\xff"), ("GET", None), ("TRACE", None)):
        _, headers, _ = request(port, path, body, method=method)
        server = next((v for k, v in headers.items() if k.lower() == "server"), "")
        assert not re.search(r"/\s*v?\d|\d\.\d", server), f"{method}: Server: {server}"


#: The edge checks by name, as ``ENDPOINT_CHECKS``.
EDGE_CHECKS: Mapping[str, Callable[[int, str], None]] = {
    "chunked_body": check_chunked_body,
    "every_other_method": check_every_other_method,
    "connection_after_refusal": check_connection_after_refusal,
    "no_versions": check_no_versions,
}


def check_endpoint(
    port: int, path: str = "/statefun", *, request_limit: Optional[int] = None
) -> None:
    """Run every check in ``ENDPOINT_CHECKS`` against the endpoint at 127.0.0.1:``port``
    ``path``, which serves :func:`make_functions`, and :func:`check_request_limit` when given
    the endpoint's ``request_limit`` in bytes. A failed check raises ``AssertionError``."""
    for check in ENDPOINT_CHECKS.values():
        check(port, path)
    if request_limit is not None:
        check_request_limit(port, path, request_limit)


#: The plugins :func:`check_reply_headers` and :func:`check_plugin_endpoints` need installed, by
#: module: the example plugin (``examples/plugin`` of the repository, not published) and
#: statefun-prometheus.
PLUGINS_CHECKED = {
    "statefun_slow_batches": "the example plugin (pip install ./examples/plugin from a checkout)",
    "statefun_prometheus": "statefun-prometheus",
}


def missing_plugins() -> str:
    """Which of ``PLUGINS_CHECKED`` are not installed, for a skip's reason ("" when none is):
    a distribution's tests run from its sdist may not have them."""
    import importlib.util

    missing = [name for module, name in PLUGINS_CHECKED.items()
               if importlib.util.find_spec(module) is None]  # fmt: skip
    return f"not installed: {', '.join(missing)}" if missing else ""


def check_reply_headers(port: int, path: str) -> None:
    """Check that a reply carries the headers installed plugins add to it (``reply_headers``):
    the example plugin's (``examples/plugin``) ``Server-Timing``."""
    body = wire.to_function(GREETER, "ann", ["ann"], NEW)
    status, headers, reply = request(port, path, body)
    assert status == 200, (status, reply[:200])
    assert headers.get("Server-Timing", "").startswith("statefun;dur="), headers


def check_plugin_endpoints(port: int, prefix: str = "", *, metrics: bool = True) -> None:
    """Check the endpoints installed plugins contribute, as a server mounts them under
    ``prefix``: ``GET /slow-batches`` of the example plugin (``examples/plugin``), and
    ``GET /metrics`` of statefun-prometheus in the text format, in OpenMetrics when asked and
    gzipped when accepted; with ``metrics=False``, that ``/metrics`` is not served (404)."""
    import gzip
    import json

    status, headers, body = request(port, f"{prefix}/slow-batches", method="GET")
    assert status == 200, (status, body)
    assert headers["Content-Type"] == "application/json"
    assert "slow_batches" in json.loads(body)

    status, headers, body = request(port, f"{prefix}/metrics", method="GET")
    if not metrics:
        assert status == 404, (status, body[:200])
        return
    assert status == 200, (status, body[:200])
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b"# TYPE statefun_batch_duration_seconds histogram" in body
    assert "Content-Encoding" not in headers

    asked = {"Accept": "application/openmetrics-text; version=1.0.0", "Accept-Encoding": "gzip"}
    status, headers, body = request(port, f"{prefix}/metrics", method="GET", headers=asked)
    assert status == 200, (status, body[:200])
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert headers["Content-Encoding"] == "gzip"
    text = gzip.decompress(body)
    assert b"# TYPE statefun_batch_duration_seconds histogram" in text and text.endswith(b"# EOF\n")


def check_plugin_endpoints_answer_head(port: int, path: str, server: str) -> None:
    """Check a plugin's ``GET`` endpoint at ``path``: ``HEAD`` finds it (``endpoint_for``),
    every other method (``POST``, also one the framework does not route) is a 405 that allows
    ``GET, HEAD`` in one short ``text/plain`` line, and every answer says ``Server: <server>`` as
    the function endpoint does, without a version."""
    got, got_headers, _ = request(port, path, method="GET")
    status, headers, body = request(port, path, method="HEAD")
    assert (got, status, body) == (200, 200, b""), (got, status, body)
    assert headers["Content-Type"] == got_headers["Content-Type"]
    answers = [got_headers, headers]
    for method in ("POST", "PUT", "DELETE", "PROPFIND"):
        refused, refused_headers, text = request(port, path, b"", method=method)
        allow = refused_headers.get("Allow")
        assert (refused, allow) == (405, "GET, HEAD"), (method, refused_headers)
        assert refused_headers["Content-Type"] == "text/plain; charset=utf-8", refused_headers
        assert 0 < len(text) < 200 and b"\n" not in text and b"Traceback" not in text, text
        answers.append(refused_headers)
    for answer in answers:
        assert answer["Server"] == server, answer
