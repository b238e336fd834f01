"""Clients at the edges, against every way to serve (what docs/security.md, "Slow clients",
reports):

    python benchmarks/soak/serving/edges.py [--slow-seconds 20] [SERVER ...]
    python benchmarks/soak/serving/edges.py --stalled 4 --hold 40 wsgi-gunicorn

By default, in turn: 200 clients that close mid-body; 200 that reset the connection right
after sending their request; 50 that send half a body and shut their side (half-open); then
200 slowloris clients sending a body one byte a second while a well-behaved client sends a
request each second (is it answered?). Then: is the server still answering, and are its file
descriptors back where they started?

With ``--stalled N``: N clients that send half a body and then nothing, keeping the
connection, for ``--hold`` seconds: is a well-behaved request answered meanwhile, and does
the server close them?
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import socket
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from servers import SERVERS, Server, running
from traffic import request

BODY = request(0)[1]


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
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
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
    name = server.name
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
    name = server.name
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slow-seconds", type=int, default=20)
    parser.add_argument("--stalled", type=int, default=0)
    parser.add_argument("--hold", type=int, default=40)
    parser.add_argument("servers", nargs="*", default=list(SERVERS)[:9])
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="statefun-edges-"))
    for name in args.servers:
        with running(name, logs / f"{name}.log") as server:
            if args.stalled:
                stalled(server, args.stalled, args.hold)
            else:
                edges(server, args.slow_seconds)
    print(f"server logs in {logs}")


if __name__ == "__main__":
    main()
