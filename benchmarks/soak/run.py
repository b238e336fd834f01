"""Long soak runs: every way to serve under sustained load, clients at the edges, and the local
runtime under faults.

    python benchmarks/soak/run.py http [--seconds 120 | --requests 100000] [--server NAME ...]
        [--addresses 1000] [--connections 64]
    python benchmarks/soak/run.py edges [--slow-seconds 20] [--server NAME ...]
    python benchmarks/soak/run.py edges --stalled 16 --hold 40 --server wsgi-gunicorn
    python benchmarks/soak/run.py local [--seed 7] [--waves 10] [--per-wave 300]

``http`` serves the fuzz functions with each server of tests/hardening/servers.py (``SERVERS``
but the two slow-client settings by default; tests/hardening/serve.py), with the installed
plugins, statefun-prometheus and statefun-opentelemetry among them, and plays the runtime
against it (tests/hardening/soak.py): every reply is checked; printed every tenth of the run
are the RSS and file descriptors of the server's processes, its GC-tracked objects, the
statefun_ samples GET /metrics serves and the rate. ``edges`` sends, in turn: 200 clients that
close mid-body; 200 that reset the connection right after sending their request; 50 that send
half a body and shut their side (half-open); then 200 slowloris clients sending a body one byte
a second while a well-behaved client sends a request each second (is it answered?); then: is
the server still answering, and are its file descriptors back where they started? With
``--stalled N``: N clients that send half a body and then nothing, keeping the connection, for
``--hold`` seconds: is a well-behaved request answered meanwhile (16 hold every thread of
serve.py's gunicorn worker), and does the server close them? (what docs/security.md, "Slow
clients", reports). ``local`` is tests/hardening/smoke.py at a larger size. ``http`` and
``local`` print their figures and exit non-zero on any wrong reply, lost or duplicated effect,
or memory growth over the bound.

A run of the former harness (2 shared cores, 100k requests each over one connection, all to
new addresses, 170 to 900 a second): RSS after the warm-up and at the end, in MiB: aiohttp
52.3/53.2, Tornado 45.2/45.8, StatefunASGI under uvicorn 45.4/45.8, StatefunWSGI under
waitress 43.4/43.8 and gunicorn (gthread) 68.7/70.0, Flask under gunicorn 74.7/75.3 and
waitress 48.9/49.4, Django under gunicorn 80.0/80.7 and uvicorn 57.8/58.5. The objects of the
serving process stayed the same from 20k requests on, the Prometheus samples at 301, the file
descriptors at rest where they started. Once batches no longer waited for the cyclic collector
(the handler's fixes of that trial): aiohttp 51.8/52.0 and Tornado 44.7/44.9 over 150k.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import struct
import sys
import tempfile
import threading
import time
from collections import Counter
from http.client import HTTPConnection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.hardening.servers import SERVERS, Server, running
from tests.hardening.smoke import NEVER, run_smoke
from tests.hardening.soak import soak
from tests.hardening.wire import counter_request

MiB = 1024 * 1024
#: every server but the two with the settings against slow clients
LONG_RUN_SERVERS = SERVERS[:-2]


def http(args: argparse.Namespace) -> int:
    failed = 0
    for name in args.server or LONG_RUN_SERVERS:
        with running(name, installed_plugins=True) as server:
            rss, base = server.settled_rss(), server.fds()
            print(f"[{name}] start rss={rss / MiB:.1f} MiB fds={base}")
            result = asyncio.run(
                soak(server, args.seconds, args.addresses, args.connections,
                     requests=args.requests, report=True)
            )  # fmt: skip
            time.sleep(3)  # for the server to close the idle connections
            print(f"[{name}] fds at rest {server.fds()}, at first {base}")
        print(result.summary(), flush=True)
        if result.errors or result.growth() > args.max_growth_mib * MiB:
            print(f"  FAILED: {result.errors[:3]}", flush=True)
            failed += 1
    return 1 if failed else 0


BODY = counter_request("edge", 0, 1)


def head(server: Server, length: int) -> bytes:
    return (
        f"POST {server.path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def partial(server: Server) -> socket.socket:
    """A connection that has sent a request's head and half its body."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.sendall(head(server, len(BODY)) + BODY[: len(BODY) // 2])
    return sock


def well_behaved(server: Server, timeout: float = 5.0) -> str:
    """A request on a new connection: its status and time, or the error."""
    started = time.monotonic()
    try:
        conn = HTTPConnection("127.0.0.1", server.port, timeout=timeout)
        conn.request("POST", server.path, BODY)
        status = conn.getresponse().status
        conn.close()
        return f"{status} in {time.monotonic() - started:.2f}s"
    except OSError as error:
        return f"{type(error).__name__} after {time.monotonic() - started:.2f}s"


def closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(0.01)
    try:
        got = sock.recv(1024)
    except OSError:  # nothing yet (a timeout), or reset
        return False
    return got == b"" or got.startswith(b"HTTP/")


def edges(server: Server, slow_seconds: int) -> None:
    name = server.framework
    base = server.fds()
    print(f"[{name}] at first: {well_behaved(server)} fds={base}", flush=True)
    for _ in range(200):
        partial(server).close()
    time.sleep(1)
    print(f"[{name}] 200 closed mid-body: {well_behaved(server)} fds={server.fds()}", flush=True)
    for _ in range(200):
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(head(server, len(BODY)) + BODY)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # a reset, before the reply is read
    time.sleep(2)
    print(f"[{name}] 200 reset before the reply: {well_behaved(server)} fds={server.fds()}")
    half_open = [partial(server) for _ in range(50)]
    for sock in half_open:
        sock.shutdown(socket.SHUT_WR)
    time.sleep(3)
    closed = sum(closed_by_server(sock) for sock in half_open)
    print(f"[{name}] 50 half-open mid-body: {closed} answered or closed by the server in 3 s")
    for sock in half_open:
        sock.close()

    slow: list[socket.socket] = []
    for _ in range(200):
        try:
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            sock.sendall(head(server, 100_000))
        except OSError as error:
            print(f"[{name}] slow client {len(slow)} could not connect: {error}")
            break
        slow.append(sock)
    dropped: list[socket.socket] = []
    stop = threading.Event()

    def drip() -> None:
        while not stop.is_set():
            for sock in list(slow):
                try:
                    sock.send(b"\n")
                except OSError:
                    slow.remove(sock)
                    dropped.append(sock)
            stop.wait(1)

    dripper = threading.Thread(target=drip)
    dripper.start()
    time.sleep(2)
    answers = []
    started = time.monotonic()
    while time.monotonic() - started < slow_seconds:
        answers.append(well_behaved(server, timeout=3))
        time.sleep(1)
    fds_meanwhile = server.fds()
    stop.set()
    dripper.join()
    outcomes = sorted({answer.split(" ")[0] for answer in answers})
    print(
        f"[{name}] {len(slow) + len(dropped)} slowloris clients for {slow_seconds}s: "
        f"{len(dropped)} dropped by the server, fds={fds_meanwhile}; a well-behaved client "
        f"meanwhile: {outcomes} ({answers[0]}, ..., {answers[-1]})",
        flush=True,
    )
    for sock in slow + dropped:
        sock.close()
    time.sleep(3)
    print(
        f"[{name}] afterwards: {well_behaved(server)} fds={server.fds()} (at first {base}), "
        f"still running: {server.process.poll() is None}",
        flush=True,
    )


def stalled(server: Server, clients: int, hold: int) -> None:
    name = server.framework
    print(f"[{name}] at first: {well_behaved(server)} fds={server.fds()}", flush=True)
    socks = [partial(server) for _ in range(clients)]
    started = time.monotonic()
    answer = ""
    while time.monotonic() - started < hold:
        answer = well_behaved(server, timeout=3)
        time.sleep(2)
    closed = sum(closed_by_server(sock) for sock in socks)
    print(
        f"[{name}] {clients} stalled clients for {hold}s: a request now: {answer}; "
        f"the server closed {closed} of them; fds={server.fds()}",
        flush=True,
    )
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.close()
    time.sleep(2)
    print(f"[{name}] once they left: {well_behaved(server)}", flush=True)


def edge_clients(args: argparse.Namespace) -> int:
    for name in args.server or LONG_RUN_SERVERS:
        # the SDK's default body limit: a slowloris client's 100 kB body is not refused
        with running(name, default_limits=True) as server:
            if args.stalled:
                stalled(server, args.stalled, args.hold)
            else:
                edges(server, args.slow_seconds)
    return 0


def local(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as workdir:
        result = asyncio.run(
            run_smoke(Path(workdir), args.seed, args.waves, args.per_wave, args.failure_rate)
        )
    print(result.summary())
    duplicated = [record for record, n in Counter(result.egress).items() if n > 1]
    ok = (
        result.counts == result.expected
        and not duplicated
        and sorted(result.egress) == sorted(result.expected_egress)
        and not any(record.startswith(NEVER) for record in result.egress)
    )
    print("counters exact, egress exactly once" if ok else "FAILED")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(required=True)
    run_http = commands.add_parser("http", help="every way to serve under sustained load")
    length = run_http.add_mutually_exclusive_group()
    length.add_argument("--seconds", type=float)
    length.add_argument("--requests", type=int)
    run_http.add_argument("--addresses", type=int, default=1000)
    run_http.add_argument("--connections", type=int, default=64)
    run_http.add_argument("--max-growth-mib", type=float, default=32)
    run_http.add_argument("--server", action="append", choices=SERVERS)
    run_http.set_defaults(run=http)
    run_edges = commands.add_parser("edges", help="clients at the edges, against each server")
    run_edges.add_argument("--slow-seconds", type=int, default=20)
    run_edges.add_argument("--stalled", type=int, default=0)
    run_edges.add_argument("--hold", type=int, default=40)
    run_edges.add_argument("--server", action="append", choices=SERVERS)
    run_edges.set_defaults(run=edge_clients)
    run_local = commands.add_parser("local", help="the local runtime under faults, larger")
    run_local.add_argument("--seed", type=int, default=7)
    run_local.add_argument("--waves", type=int, default=10)
    run_local.add_argument("--per-wave", type=int, default=300)
    run_local.add_argument("--failure-rate", type=float, default=0.1)
    run_local.set_defaults(run=local)
    args = parser.parse_args()
    if args.run is http and args.requests is None and args.seconds is None:
        args.seconds = 120
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
