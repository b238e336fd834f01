"""Instructions per request of each HTTP endpoint, counted under valgrind: immune to load.

    python benchmarks/http/callgrind.py                         # every framework, ~10 minutes
    python benchmarks/http/callgrind.py --frameworks flask django

The wrk benches time real servers, and on a busy machine their CPU time per request moves by
tens of microseconds between runs: more than the few an integration adds. This counts the
same endpoints' instructions instead. Each (framework, endpoint kind) runs in its own process
under callgrind twice, answering 200 and then 700 requests after the same warm-up, and the
difference over 500 is one request's count, startup and warm-up cancelling out.

- ``flask`` and ``django`` (the apps of ``flask_app.py`` and ``django_app.py``) are called as
  WSGI applications with the environ gunicorn builds, with no server around them.
- ``asgi`` (the apps of ``asgi_app.py``: ``StatefunASGI`` for ``statefun``, a hand-written
  ASGI endpoint around ``handle_async`` or the floor for the others) is served by uvicorn's
  HTTP/1.1 protocol (``H11Protocol``, as ``asgi_protocol.py`` drives it), with no sockets;
  ``asgi-httptools`` the same apps under uvicorn[standard]'s ``HttpToolsProtocol``.
- ``gunicorn-flask`` and ``gunicorn-django`` are the same apps served by gunicorn: one sync
  worker under callgrind, this process posting to it on a new connection per request, as
  wrk's are (a sync worker closes each); the worker's count, so gunicorn's own share (HTTP
  parsing, the environ, the sockets' Python side) is in it, the same for every endpoint kind.
- ``aiohttp`` and ``tornado`` (``aiohttp_server.py``, ``tornado_server.py``) serve on
  127.0.0.1 in the process that also runs the client, one keep-alive connection posting in
  turn: the client's share is the same for every endpoint kind, so the differences between
  kinds are the server's.

The table gives thousands of instructions (kI) per request for ``floor``, ``handler`` and
``statefun``, and the integration's own count, statefun - handler (the issue's target is
3 us: some 20 kI at about 6.5 instructions per nanosecond, what a 70 us Flask request takes
for its 460 kI here).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
FRAMEWORKS = (
    "aiohttp", "tornado", "flask", "django", "gunicorn-flask", "gunicorn-django", "asgi",
    "asgi-httptools",
)  # fmt: skip
KINDS = ("floor", "handler", "statefun")
WARM_UP = 200


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--frameworks", nargs="+", choices=FRAMEWORKS, default=FRAMEWORKS)
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=KINDS)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="valgrinds at once")
    args = parser.parse_args()
    runs = [(fw, kind, n) for fw in args.frameworks for kind in args.kinds for n in (200, 700)]
    with ThreadPoolExecutor(args.jobs) as pool:
        totals = dict(zip(runs, pool.map(lambda run: callgrind(*run), runs)))
    counts: dict[tuple[str, str], int] = {}
    for fw in args.frameworks:
        for kind in args.kinds:
            counts[fw, kind] = (totals[fw, kind, 700] - totals[fw, kind, 200]) // 500
    width = max(len(fw) for fw in (*args.frameworks, "framework")) + 2
    print(
        f"\n{'framework':<{width}}" + "".join(f"{kind + ' kI':>13}" for kind in args.kinds), end=""
    )
    both = {"handler", "statefun"} <= set(args.kinds)
    print(f"{'integration kI':>16}" if both else "")
    for fw in args.frameworks:
        print(
            f"{fw:<{width}}" + "".join(f"{counts[fw, k] / 1000:>13.1f}" for k in args.kinds), end=""
        )
        integration = counts[fw, "statefun"] - counts[fw, "handler"] if both else None
        print(f"{integration / 1000:>+16.1f}" if integration is not None else "")


def callgrind(framework: str, kind: str, requests: int) -> int:
    if framework.startswith("gunicorn-"):
        return callgrind_gunicorn(framework.removeprefix("gunicorn-"), kind, requests)
    command = [
        "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
        sys.executable, __file__, "--serve", framework, kind, str(requests),
    ]  # fmt: skip
    # one hash seed for every run: with a random one, dicts and sets are laid out anew in each
    # process and the same code counts some kI apart
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    output = subprocess.run(command, capture_output=True, text=True, check=True, env=env).stderr
    match = re.search(r"Collected : (\d+)", output)
    if match is None:
        raise SystemExit(f"no count from callgrind for {framework} {kind}:\n{output}")
    return int(match.group(1))


def callgrind_gunicorn(framework: str, kind: str, requests: int) -> int:
    """The count of gunicorn's sync worker serving ``framework``'s ``kind`` endpoint for the
    warm-up and ``requests`` requests, posted from here."""
    from flask_django_wrk import APPS, PATHS
    from wrk import greeter_reply, greeter_requests

    from statefun_core.testing.endpoint import free_port, request, running

    bodies = greeter_requests(100)
    port = free_port()
    env = {
        **os.environ,
        "PYTHONHASHSEED": "0",  # see callgrind()
        "BENCH_KIND": kind,
        "BENCH_FIXED_REPLY": greeter_reply(bodies[0]).hex(),
        "STATEFUN_DISABLE_PLUGIN_AUTOLOAD": "1",
    }
    with tempfile.TemporaryDirectory() as out:
        command = [
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/%p",
            sys.executable, "-m", "gunicorn", "-k", "sync", "-w", "1", "--timeout", "600",
            "-b", f"127.0.0.1:{port}", "--log-level", "warning", APPS[framework].format(kind=kind),
        ]  # fmt: skip
        # stopped with SIGTERM as the block ends: gunicorn exits, callgrind writes each file
        with running(command, port, cwd=HERE, env=env, timeout=600):
            for n in range(WARM_UP + requests):
                status, _, _ = request(port, PATHS[framework], bodies[n % len(bodies)])
                assert status == 200, status
        counts = [
            int(match.group(1))
            for file in Path(out).iterdir()
            if (match := re.search(r"^(?:summary|totals): (\d+)", file.read_text(), re.M))
        ]
    return max(counts)  # the worker's: the arbiter only waits


# --- the worker: one framework's endpoint kind, answering ``requests`` requests ---------------


def serve(framework: str, kind: str, requests: int) -> None:
    from wrk import greeter_reply, greeter_requests

    bodies = greeter_requests(100)
    fixed_reply = greeter_reply(bodies[0])
    os.environ.update(
        BENCH_KIND=kind,
        BENCH_FIXED_REPLY=fixed_reply.hex(),
        STATEFUN_DISABLE_PLUGIN_AUTOLOAD="1",
    )
    if framework in ("flask", "django"):
        wsgi(framework, kind, bodies, WARM_UP + requests)
    elif framework == "asgi":
        asyncio.run(asgi(kind, bodies, WARM_UP + requests, "h11"))
    elif framework == "asgi-httptools":
        asyncio.run(asgi(kind, bodies, WARM_UP + requests, "httptools"))
    else:
        asyncio.run(served(framework, kind, fixed_reply, bodies, WARM_UP + requests))


def wsgi(framework: str, kind: str, bodies: list[bytes], requests: int) -> None:
    if framework == "flask":
        from flask_app import make_app

        app = make_app(kind)
        path = "/statefun"
    else:
        from django_app import application as app

        path = "/statefun"  # as module.yaml names it

    def start_response(status: str, headers: object, exc_info: object = None) -> None:
        assert status.startswith("200"), status

    for n in range(requests):
        body = bodies[n % len(bodies)]
        environ = {
            "REQUEST_METHOD": "POST", "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
            "CONTENT_TYPE": "application/octet-stream", "CONTENT_LENGTH": str(len(body)),
            "HTTP_HOST": "127.0.0.1:8000", "HTTP_USER_AGENT": "wrk", "REMOTE_ADDR": "127.0.0.1",
            "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
            "wsgi.version": (1, 0), "wsgi.multithread": False, "wsgi.multiprocess": True,
            "wsgi.run_once": False, "wsgi.input_terminated": True,
        }  # fmt: skip
        result = app(environ, start_response)
        b"".join(result)
        getattr(result, "close", lambda: None)()


async def asgi(kind: str, bodies: list[bytes], requests: int, http: str) -> None:
    os.environ["BENCH_KIND"] = kind
    from asgi_app import app
    from asgi_protocol import connection

    one = connection(app, http)
    posts = [
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nContent-Type: application/octet-stream"
        b"\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        for body in bodies
    ]
    for n in range(requests):
        await one(posts[n % len(posts)])


async def served(
    framework: str, kind: str, fixed_reply: bytes, bodies: list[bytes], requests: int
) -> None:
    if framework == "aiohttp":
        import aiohttp_server
        from aiohttp import web

        runner = web.AppRunner(aiohttp_server.make_app(kind, fixed_reply), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
    else:
        import tornado_server
        from tornado.httpserver import HTTPServer
        from tornado.netutil import bind_sockets

        sockets = bind_sockets(0, "127.0.0.1")
        port = sockets[0].getsockname()[1]
        HTTPServer(tornado_server.make_app(kind, fixed_reply)).add_sockets(sockets)
    posts = [
        b"POST /statefun HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream"
        b"\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        for body in bodies
    ]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for n in range(requests):
        writer.write(posts[n % len(posts)])
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        length = re.search(rb"(?i)content-length: (\d+)", head)
        assert length is not None, head
        await reader.readexactly(int(length.group(1)))
    writer.close()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        sys.path.insert(0, str(HERE))
        serve(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
