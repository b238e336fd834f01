"""A soak run against one server: the client plays the runtime.

Many connections send batches to hundreds of counter addresses at once. Like the runtime, the
client keeps each address's state, sends it with the batch, applies the reply's mutation, and
never has two batches in flight for one address. Every reply is checked: the count is the
state sent plus the batch's invocations, and each effect names the address it came from (no
cross-talk between concurrent requests). Every other request (``KINDS``) goes to a new address
with an argument of a typename never seen before: state discovery, a function that raises, an
unknown function, a call with a caller, malformed bytes; each answered with its status
(``EXPECTED``). The server's RSS is sampled throughout; with ``report``, each tenth of the run
prints its RSS, file descriptors, GC-tracked objects, the statefun_ samples GET /metrics serves
(Prometheus series: they must not grow with addresses or typenames) and the rate.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Optional

import aiohttp

from statefun_core import IntType, protocol
from statefun_core.testing.wire import to_function

from .fuzz_target import COUNTER, STATELESS
from .servers import Server
from .wire import request

KINDS = ("counter",) * 5 + ("discovery", "failing", "unknown", "caller", "malformed")
#: the status each kind of request is answered with
EXPECTED = {"discovery": 200, "failing": 500, "unknown": 404, "caller": 200, "malformed": 400}


@dataclass
class SoakResult:
    framework: str
    requests: int = 0
    addresses: int = 0
    connections: int = 0
    seconds: float = 0.0
    rss_samples: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def peak_rss(self) -> int:
        return max(self.rss_samples)

    def growth(self) -> int:
        """Median RSS of the last quarter minus that of the second (after warm-up)."""
        quarter = max(1, len(self.rss_samples) // 4)
        second = self.rss_samples[quarter : 2 * quarter]
        last = self.rss_samples[-quarter:]
        return int(statistics.median(last) - statistics.median(second))

    def summary(self) -> str:
        mib = 1024 * 1024
        return (
            f"{self.framework}: {self.requests} requests over {self.addresses} addresses from "
            f"{self.connections} connections in {self.seconds:.1f} s "
            f"({self.requests / self.seconds:.0f}/s); server RSS peak {self.peak_rss / mib:.1f} "
            f"MiB, growth {self.growth() / mib:+.1f} MiB over {len(self.rss_samples)} samples"
        )


def check_reply(id: str, before: int, values: list[int], reply: bytes) -> int:
    result = protocol.FromFunction.FromString(reply).invocation_result
    (mutation,) = result.state_mutations
    after = IntType.serializer().deserialize(mutation.state_value.value)
    assert after == before + len(values), (id, before, len(values), after)
    for delayed in result.delayed_invocations:  # value % 3 == 0: a delayed message to itself
        assert delayed.target.id == id, (id, delayed)
    assert len(result.delayed_invocations) == sum(1 for v in values if v % 3 == 0)
    for message in result.outgoing_messages:  # value % 7 == 0: a message to counter <value>
        assert message.target.id in {str(v) for v in values}, (id, message)
    return int(after)


def other_request(kind: str, i: int) -> bytes:
    """Request ``i``, of a kind other than "counter": to a new address, with an argument of a
    new typename."""
    id = f"new-{i}"
    argument = protocol.TypedValue(typename=f"soak.types/T{i}", has_value=True, value=b"%d" % i)
    if kind == "discovery":  # no state registered yet: the reply asks for it
        return to_function(COUNTER, id, [argument])
    if kind == "failing":  # 13 makes the counter raise
        return request(COUNTER, id, {"count": (IntType, 0)}, [(IntType, 13)])
    if kind == "unknown":  # a function type nobody serves, a new one each time
        return to_function(f"soak.unknown/f{i}", id, [argument])
    if kind == "caller":
        return to_function(STATELESS, id, [argument], caller=(f"soak.callers/c{i}", id))
    return b"\xff\xff\x00not protobuf %d" % i


async def soak(
    server: Server,
    seconds: Optional[float] = None,
    addresses: int = 300,
    connections: int = 32,
    seed: int = 0,
    requests: Optional[int] = None,
    report: bool = False,
) -> SoakResult:
    """Send requests for ``seconds``, or ``requests`` of them."""
    assert (seconds is None) != (requests is None), "seconds or requests"
    result = SoakResult(server.framework, addresses=addresses, connections=connections)
    counts = {str(i): 0 for i in range(addresses)}
    sent = {str(i): 0 for i in range(addresses)}
    locks = {id: asyncio.Lock() for id in counts}
    url = f"http://127.0.0.1:{server.port}{server.path}"
    rng = random.Random(seed)
    started = time.monotonic()
    deadline = started + seconds if seconds is not None else float("inf")
    numbers = itertools.count()
    done = False

    def progress() -> float:
        if requests is not None:
            return result.requests / requests
        return (time.monotonic() - started) / (deadline - started)

    async def send(session: aiohttp.ClientSession, data: bytes) -> tuple[int, bytes]:
        async with session.post(url, data=data) as response:
            return response.status, await response.read()

    async def worker(session: aiohttp.ClientSession) -> None:
        while time.monotonic() < deadline and not result.errors:
            i = next(numbers)
            if requests is not None and i >= requests:
                return
            kind = KINDS[i % len(KINDS)]
            if kind != "counter":
                status, body = await send(session, other_request(kind, i))
                if status != EXPECTED[kind]:
                    result.errors.append(f"{kind} {i}: {status}: {body[:200]!r}")
                result.requests += 1
                continue
            id = str(rng.randrange(addresses))
            values = [rng.choice((1, 2, 3, 4, 6, 9, 11)) for _ in range(rng.randint(1, 8))]
            async with locks[id]:
                before = counts[id]
                status, body = await send(session, _with_values(id, before, values))
                if status != 200:
                    result.errors.append(f"counter {i}: {status}: {body[:200]!r}")
                    return
                counts[id] = check_reply(id, before, values, body)
                sent[id] += len(values)
                result.requests += 1

    async def sample(session: aiohttp.ClientSession) -> None:
        tenth = 1
        while not done:
            result.rss_samples.append(server.rss())
            if report and progress() >= tenth / 10:
                tenth = int(progress() * 10) + 1
                await print_sample(session)
            await asyncio.sleep(0.25 if seconds is None else min(0.25, seconds / 40))

    async def print_sample(session: aiohttp.ClientSession) -> None:
        objects = await asyncio.to_thread(server.objects)
        print(
            f"[{server.framework}] {result.requests} requests "
            f"rss={result.rss_samples[-1] / 2**20:.1f} MiB fds={server.fds()} "
            f"objects={objects} series={await metrics_samples(session, server)} "
            f"{result.requests / (time.monotonic() - started):.0f} req/s",
            flush=True,
        )

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        sampler = asyncio.ensure_future(sample(session))
        await asyncio.gather(*(worker(session) for _ in range(connections * 2)))
        result.seconds = time.monotonic() - started
        done = True
        await sampler
        result.rss_samples.append(server.rss())  # at least two, however soon the run stopped
        if report:
            await print_sample(session)
    assert result.errors or counts == sent  # every address counted exactly what was sent to it
    return result


async def metrics_samples(session: aiohttp.ClientSession, server: Server) -> int:
    """The statefun_ samples of GET /metrics (at the root, else under the function's path);
    -1 without statefun-prometheus."""
    for path in ("/metrics", server.path.rstrip("/") + "/metrics"):
        async with session.get(f"http://127.0.0.1:{server.port}{path}") as response:
            text = await response.text()
            if response.status == 200:
                return sum(1 for line in text.splitlines() if line.startswith("statefun_"))
    return -1


def _with_values(id: str, count: int, values: list[int]) -> bytes:
    return request(COUNTER, id, {"count": (IntType, count)}, [(IntType, v) for v in values])
