"""Server CPU per request of the ASGI benchmark's applications through uvicorn's own HTTP/1.1
protocol (``H11Protocol``, or ``HttpToolsProtocol`` with ``--http httptools``), in one
process, with no sockets.

    python benchmarks/http/asgi_protocol.py
    python benchmarks/http/asgi_protocol.py --requests 5000 --repeats 9
    python benchmarks/http/asgi_protocol.py --http httptools     # uvicorn[standard]'s parser

What wrk measures over loopback, less the network and the other processes of a busy machine:
keep-alive requests (the greeter bodies of asgi_wrk.py) are fed to one connection's protocol
and each response is awaited before the next. The applications take turns for ``--repeats``
runs; the table shows each one's fastest run (the least disturbed) and the median. Target, as
asgi_wrk.py's: statefun at 97% or more of the floor's requests/s (the floor's time / statefun's).
All endpoints run in one process, so they share its draw of hash seed and memory layout: to
compare two trees, run this in several new processes for each, alternating.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

from uvicorn.config import Config
from uvicorn.server import ServerState
from wrk import TARGET_RATIO as TARGET
from wrk import core_build, greeter_reply, greeter_requests

HERE = Path(__file__).resolve().parent
KINDS = ("bare", "floor", "handler", "statefun")  # and "both" (asgi_app.py), on request


class Transport(asyncio.Transport):
    """What the protocol writes, kept in a list."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def connection(app: Any, http: str = "h11") -> Callable[[bytes], Awaitable[None]]:
    """One keep-alive connection of uvicorn's ``http`` protocol to ``app`` (``h11``: its
    ``H11Protocol``; ``httptools``, what uvicorn[standard] runs: ``HttpToolsProtocol``), in
    this event loop: the returned coroutine function feeds it one request and waits for the
    whole response (the request's cycle complete: h11 writes it in three pieces, head, body
    and end of message, httptools in two)."""
    config = Config(app, http=http, lifespan="off", log_level="warning", access_log=False)
    config.load()  # imports the protocol's class
    protocol = config.http_protocol_class(config, ServerState(), {})  # type: ignore[call-arg]
    transport = Transport()
    protocol.connection_made(transport)

    async def request(data: bytes) -> None:
        before = len(transport.written)
        protocol.data_received(data)  # parses it and starts the application's task
        while not protocol.cycle.response_complete:
            await asyncio.sleep(0)
        assert b" 200 " in transport.written[before], transport.written[before]

    return request


async def microseconds_per_request(app: Any, requests: list[bytes], count: int, http: str) -> float:
    one = connection(app, http)
    for i in range(200):  # warm up
        await one(requests[i % len(requests)])
    started = time.process_time()
    for i in range(count):
        await one(requests[i % len(requests)])
    return (time.process_time() - started) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="per run")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--addresses", type=int, default=100)
    parser.add_argument("--http", choices=["h11", "httptools"], default="h11")
    parser.add_argument("--kinds", nargs="+", choices=[*KINDS, "both"], default=KINDS)
    args = parser.parse_args()

    bodies = greeter_requests(args.addresses)
    os.environ["BENCH_FIXED_REPLY"] = greeter_reply(bodies[0]).hex()
    sys.path.insert(0, str(HERE))
    from asgi_app import make_app

    requests = [
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        for body in bodies
    ]
    kinds = args.kinds
    apps = {kind: make_app(kind) for kind in kinds}
    runs: dict[str, list[float]] = {kind: [] for kind in kinds}
    for _ in range(args.repeats):
        for kind in kinds:
            runs[kind].append(
                asyncio.run(
                    microseconds_per_request(apps[kind], requests, args.requests, args.http)
                )
            )
    print(
        f"\nuvicorn's {args.http} protocol in one process, {args.requests} requests "
        f"x {args.repeats} runs, Python {sys.version.split()[0]}, the core {core_build()}"
    )
    print(f"{'endpoint':<10}{'fastest us':>11}{'median us':>11}")
    for kind in kinds:
        print(f"{kind:<10}{min(runs[kind]):>11.1f}{statistics.median(runs[kind]):>11.1f}")
    for reference in ("floor", "handler"):
        if not {reference, "statefun"} <= set(kinds):
            continue
        fastest = min(runs[reference]) / min(runs["statefun"])
        median = statistics.median(runs[reference]) / statistics.median(runs["statefun"])
        verdict = f"; {'meets' if fastest >= TARGET else 'BELOW'} the {TARGET:.0%} target"
        print(
            f"statefun / {reference} ({reference}'s time / statefun's): fastest runs "
            f"{fastest:.1%}, medians {median:.1%}{verdict if reference == 'floor' else ''}"
        )
    if {"both", "floor", "handler"} <= set(kinds):
        sdk = min(runs["both"]) - min(runs["floor"])
        floor = min(runs["both"]) - min(runs["handler"])
        print(f"fastest runs: the SDK's work {sdk:.1f} us, the floor's {floor:.1f} us (both - ...)")


if __name__ == "__main__":
    main()
