"""Long runs of every way to serve: does a server's memory keep growing?

    python benchmarks/soak/serving/soak.py [--requests 100000] [SERVER ...]

Each server (servers.py; all of them by default) serves functions.py with the installed
plugins, statefun-prometheus and statefun-opentelemetry among them, and gets ``--requests``
requests over one kept-alive connection (traffic.py: every request to a new address with
argument typenames never seen before; discovery, failures, 404s and 400s among them), each
answer's status checked. Printed every tenth of the run: the RSS and file descriptors of the
server's processes, its GC-tracked objects, the number of statefun_ samples GET /metrics
serves (Prometheus series: they must not grow with addresses or typenames), and the rate.
Memory is compared from the end of the first tenth (the warm-up) on.

A run (2 shared cores, 100k requests each, 170 to 900 a second): RSS after the warm-up and
at the end, in MiB: aiohttp 52.3/53.2, Tornado 45.2/45.8, StatefunASGI under uvicorn
45.4/45.8, StatefunWSGI under waitress 43.4/43.8 and gunicorn (gthread) 68.7/70.0, Flask
under gunicorn 74.7/75.3 and waitress 48.9/49.4, Django under gunicorn 80.0/80.7 and uvicorn
57.8/58.5. The objects of the serving process stayed the same from 20k requests on, the
Prometheus samples at 301, the file descriptors at rest where they started. Once batches no
longer waited for the cyclic collector (the handler's fixes of this trial): aiohttp
51.8/52.0 and Tornado 44.7/44.9 over 150k.
"""

from __future__ import annotations

import argparse
import http.client
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from servers import SERVERS, Server, running
from traffic import EXPECTED, request


def metrics_samples(conn: http.client.HTTPConnection, server: Server) -> int:
    for path in ("/metrics", server.path.rstrip("/") + "/metrics"):
        conn.request("GET", path)
        response = conn.getresponse()
        text = response.read().decode()
        if response.status == 200:
            return sum(1 for line in text.splitlines() if line.startswith("statefun_"))
    return -1


def soak(server: Server, total: int) -> float:
    """Send ``total`` requests; the RSS growth after the warm-up, in MiB."""
    name = server.name
    print(f"[{name}] start rss={server.rss_mib():.1f} MiB fds={server.fds()}", flush=True)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    tenth = max(1, total // 10)
    samples = []
    started = time.monotonic()
    for i in range(total):
        kind, body = request(i)
        conn.request("POST", server.path, body, {"Content-Type": "application/octet-stream"})
        response = conn.getresponse()
        response.read()
        if response.status != EXPECTED[kind]:
            raise AssertionError(f"request {i} ({kind}) answered {response.status}")
        if response.will_close:
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        if (i + 1) % tenth == 0:
            samples.append(server.rss_mib())
            print(
                f"[{name}] {i + 1} requests rss={samples[-1]:.1f} MiB fds={server.fds()} "
                f"objects={server.objects()} series={metrics_samples(conn, server)} "
                f"{(i + 1) / (time.monotonic() - started):.0f} req/s",
                flush=True,
            )
    conn.close()
    growth = samples[-1] - samples[0]
    print(
        f"[{name}] rss after warm-up {samples[0]:.1f} MiB, after {total}: {samples[-1]:.1f} "
        f"MiB ({growth:+.1f}); fds at rest {server.fds()}",
        flush=True,
    )
    return growth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("servers", nargs="*", default=list(SERVERS)[:9])
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="statefun-soak-"))
    for name in args.servers:
        with running(name, logs / f"{name}.log") as server:
            soak(server, args.requests)
    print(f"server logs in {logs}")


if __name__ == "__main__":
    main()
