"""A soak run against one integration's server: the client plays the runtime.

Many connections send batches to hundreds of counter addresses at once. Like the runtime, the
client keeps each address's state, sends it with the batch, applies the reply's mutation, and
never has two batches in flight for one address. Every reply is checked: the count is the
state sent plus the batch's invocations, and each effect names the address it came from (no
cross-talk between concurrent requests). The server's RSS is sampled throughout.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from dataclasses import dataclass, field

import aiohttp

from statefun_core import IntType, protocol

from .fuzz_target import COUNTER
from .servers import Server
from .wire import request


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


async def soak(
    server: Server, seconds: float, addresses: int = 300, connections: int = 32, seed: int = 0
) -> SoakResult:
    result = SoakResult(server.framework, addresses=addresses, connections=connections)
    counts = {str(i): 0 for i in range(addresses)}
    sent = {str(i): 0 for i in range(addresses)}
    locks = {id: asyncio.Lock() for id in counts}
    url = f"http://127.0.0.1:{server.port}/statefun"
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        while time.monotonic() < deadline:
            id = str(rng.randrange(addresses))
            values = [rng.choice((1, 2, 3, 4, 6, 9, 11)) for _ in range(rng.randint(1, 8))]
            async with locks[id]:
                before = counts[id]
                data = _with_values(id, before, values)
                async with session.post(url, data=data) as response:
                    body = await response.read()
                    if response.status != 200:
                        result.errors.append(f"{response.status}: {body[:200]!r}")
                        return
                counts[id] = check_reply(id, before, values, body)
                sent[id] += len(values)
                result.requests += 1

    async def sample() -> None:
        while time.monotonic() < deadline:
            result.rss_samples.append(server.rss())
            await asyncio.sleep(min(0.25, seconds / 40))

    started = time.monotonic()
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(sample(), *(worker(session) for _ in range(connections * 2)))
    result.seconds = time.monotonic() - started
    assert counts == sent  # every address counted exactly what was sent to it
    return result


def _with_values(id: str, count: int, values: list[int]) -> bytes:
    return request(COUNTER, id, {"count": (IntType, count)}, [(IntType, v) for v in values])
