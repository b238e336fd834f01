"""What the plugin host costs when no plugin listens: ``handle_sync`` on the greeter request.

    python benchmarks/plugin_overhead.py [--rounds 40] [--block-ms 20] [--max-ratio 1.05]

Handlers, interleaved round by round (the order rotates), each timed in blocks of requests:

  a  a plugin manager with no plugins
  b  a manager holding a plugin that implements no lifecycle hook (only a types hook)
  c  a manager holding a plugin with a no-op implementation of every lifecycle hook
     (for information: the cost of building and dispatching the events)
  d  statefun-prometheus on a private registry, when installed (for information)
  e  statefun-opentelemetry with an SDK tracer provider and no exporter, when installed

Reports the median microseconds per request of each and the ratios b/a and c/a. The budget is
b/a <= 1.05; ``--max-ratio`` makes the exit status fail above it.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

from core.functions import bind
from core.payloads import build

import statefun_core
from statefun_core import RequestReplyHandler, make_plugin_manager
from statefun_core.plugins import hookimpl


class TypesOnly:
    """Registered, but implements no lifecycle hook."""

    @hookimpl
    def statefun_register_types(self, registry: Any) -> None:
        pass


class Listener:
    """Implements every lifecycle hook, doing nothing."""

    @hookimpl
    def statefun_batch_started(self, batch: Any) -> None:
        pass

    @hookimpl
    def statefun_invocation_started(self, invocation: Any) -> None:
        pass

    @hookimpl
    def statefun_invocation_finished(self, invocation: Any, error: Optional[BaseException]) -> None:
        pass

    @hookimpl
    def statefun_batch_finished(self, batch: Any) -> None:
        pass

    @hookimpl
    def statefun_batch_failed(self, batch: Any, error: BaseException) -> None:
        pass

    @hookimpl
    def statefun_request_failed(self, error: BaseException, batch: Any, headers: Any) -> None:
        pass


def handlers() -> dict[str, Callable[[bytes], bytes]]:
    functions = bind(statefun_core)

    def handler(*plugins: Any) -> Callable[[bytes], bytes]:
        manager = make_plugin_manager(plugins, load_entrypoints=False)
        return RequestReplyHandler(functions, plugins=manager).handle_sync

    runs = {
        "a: no plugins": handler(),
        "b: plugin without lifecycle hooks": handler(TypesOnly()),
        "c: plugin with no-op lifecycle hooks": handler(Listener()),
    }
    try:
        from prometheus_client import CollectorRegistry
        from statefun_prometheus import PrometheusPlugin
    except ImportError:
        pass
    else:
        runs["d: statefun-prometheus"] = handler(PrometheusPlugin(CollectorRegistry()))
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from statefun_opentelemetry import OpenTelemetryPlugin
    except ImportError:
        pass
    else:
        tracing = OpenTelemetryPlugin(tracer_provider=TracerProvider())
        runs["e: statefun-opentelemetry (SDK, no exporter)"] = handler(tracing)
    return runs


def block(handle: Callable[[bytes], bytes], body: bytes, size: int) -> float:
    """Seconds per request over ``size`` requests in a row."""
    start = time.perf_counter()
    for _ in range(size):
        handle(body)
    return (time.perf_counter() - start) / size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--block-ms", type=float, default=20.0)
    parser.add_argument("--max-ratio", type=float, default=None)
    options = parser.parse_args()

    body = build()["greeter"]
    runs = handlers()
    replies = {handle(body) for handle in runs.values()}
    assert len(replies) == 1, "the handlers disagree"

    baseline = next(iter(runs.values()))
    for _ in range(200):  # warm up
        baseline(body)
    size = max(1, int(options.block_ms / 1000 / block(baseline, body, 500)))

    samples: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for round_ in range(options.rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            samples[name].append(block(runs[name], body, size))

    medians = {name: statistics.median(values) for name, values in samples.items()}
    fastest = {name: min(values) for name, values in samples.items()}
    a = medians[names[0]]
    print(
        f"handle_sync, greeter request, {options.rounds} rounds x {size} requests, "
        f"Python {sys.version.split()[0]}; median (and fastest block) per request"
    )
    for name in names:
        print(
            f"  {name:46} {medians[name] * 1e6:8.2f} us  {medians[name] / a:6.3f}x"
            f"   ({fastest[name] * 1e6:8.2f} us  {fastest[name] / fastest[names[0]]:6.3f}x)"
        )
    ratio = medians[names[1]] / a
    print(f"overhead of the host with no listening plugin (b/a, medians): {ratio:.3f}")
    if options.max_ratio is not None and ratio > options.max_ratio:
        print(f"FAIL: {ratio:.3f} > {options.max_ratio}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
