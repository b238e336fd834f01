"""One implementation under test, in its own process: JSON commands in, JSON results out.

Run by ``benchmarks/run.py`` as ``python -m core.worker IMPL [DESCRIPTORS]`` (from
``benchmarks/``) inside that implementation's virtualenv; IMPL is ``official`` (the
``statefun`` package, whichever protobuf its venv has), ``ours`` (``statefun_core``) or
``floor`` (no SDK; DESCRIPTORS is the ``statefun.desc`` it builds its messages from).

Each stdin line is a JSON command ``{"op": ..., ...}``; each answer is one JSON line on the
real stdout (anything the code under test prints goes to stderr).

``python -m core.worker IMPL [DESCRIPTORS] --spin PAYLOAD HANDLER SECONDS`` instead handles
one payload over and over for that long, for a sampling profiler (``py-spy record -- ...``).
"""

from __future__ import annotations

import asyncio
import base64
import cProfile
import gc
import io
import json
import os
import platform
import pstats
import sys
import time
from pathlib import Path
from typing import Any, Callable

HANDLERS = ("sync", "async")


def make_handler(impl: str, descriptors: str) -> tuple[Any, dict[str, str]]:
    """The handler under test and what it runs on (versions, protobuf backend)."""
    from google.protobuf import __version__ as protobuf_version
    from google.protobuf.internal import api_implementation

    info = {
        "python": platform.python_version(),
        "protobuf": protobuf_version,
        "backend": api_implementation.Type(),
    }
    if impl == "floor":
        from .floor import Floor

        return Floor(Path(descriptors)), info

    from .functions import bind

    if impl == "official":
        from importlib.metadata import version

        import statefun as sdk

        official = version("apache-flink-statefun")
        info["sdk"] = f"apache-flink-statefun {official} ({Path(sdk.__file__).parent})"
        return sdk.RequestReplyHandler(bind(sdk)), info
    if impl == "ours":
        import statefun_core as sdk

        info["sdk"] = f"statefun-core {sdk.__version__} ({Path(sdk.__file__).parent})"
        return sdk.RequestReplyHandler(bind(sdk)), info
    raise SystemExit(f"unknown implementation {impl!r}")


class Worker:
    def __init__(self, handler: Any) -> None:
        self.handler = handler
        self.loop = asyncio.new_event_loop()
        self.payloads: dict[str, bytes] = {}

    def op_load(self, payloads: dict[str, str]) -> dict[str, Any]:
        self.payloads = {name: base64.b64decode(data) for name, data in payloads.items()}
        return {}

    def op_reply(self, payload: str, handler: str) -> dict[str, Any]:
        data = self.payloads[payload]
        if handler == "sync":
            reply = self.handler.handle_sync(data)
        else:
            reply = self.loop.run_until_complete(self.handler.handle_async(data))
        return {"reply": base64.b64encode(reply).decode()}

    def op_time(self, payload: str, handler: str, n: int) -> dict[str, Any]:
        """Wall-clock and this thread's CPU nanoseconds for ``n`` requests in a row.

        No ``gc.collect()`` first: it hands freed memory back to the system, and the next
        requests pay page faults to get it again, which a server between requests does not.
        """
        data = self.payloads[payload]
        if handler == "async":
            return self.loop.run_until_complete(self._time_async(data, n))
        handle = self.handler.handle_sync
        clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
        cpu_start, start = cpu_clock(), clock()
        for _ in range(n):
            handle(data)
        ns, cpu_ns = clock() - start, cpu_clock() - cpu_start
        return {"ns": ns, "cpu_ns": cpu_ns}

    async def _time_async(self, data: bytes, n: int) -> dict[str, Any]:
        """As a server drives it: one running loop, each request awaited in turn."""
        handle = self.handler.handle_async
        clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
        cpu_start, start = cpu_clock(), clock()
        for _ in range(n):
            await handle(data)
        ns, cpu_ns = clock() - start, cpu_clock() - cpu_start
        return {"ns": ns, "cpu_ns": cpu_ns}

    def op_count(self, payload: str, handler: str, n: int) -> dict[str, Any]:
        """Run ``n`` requests between two ``os.getppid()`` calls, after a warm-up. Under
        callgrind with ``--dump-before=getppid``, the second dump counts exactly them."""
        data = self.payloads[payload]
        gc.collect()
        if handler == "async":
            self.loop.run_until_complete(self._count_async(data, n))
            return {}
        handle = self.handler.handle_sync
        handle(data)
        handle(data)
        os.getppid()
        for _ in range(n):
            handle(data)
        os.getppid()
        return {}

    async def _count_async(self, data: bytes, n: int) -> None:
        handle = self.handler.handle_async
        await handle(data)
        await handle(data)
        os.getppid()
        for _ in range(n):
            await handle(data)
        os.getppid()

    def op_calibrate(self, payload: str, handler: str, target_ns: int) -> dict[str, Any]:
        """The number of requests that takes about ``target_ns`` (after a warm-up)."""
        n = 1
        while True:
            ns = self.op_time(payload, handler, n)["ns"]
            if ns >= target_ns / 4 or n >= 1_000_000:
                return {"n": max(1, round(n * target_ns / max(ns, 1)))}
            n *= 4

    def op_profile(self, payload: str, handler: str, n: int, top: int) -> dict[str, Any]:
        profile = cProfile.Profile()
        profile.enable()
        self.op_time(payload, handler, n)
        profile.disable()
        out = io.StringIO()
        stats = pstats.Stats(profile, stream=out)
        stats.sort_stats("tottime").print_stats(top)
        stats.sort_stats("cumulative").print_stats(top)
        return {"text": out.getvalue()}

    def op_equivalent(self, replies: dict[str, str]) -> dict[str, Any]:
        """Parse each reply as a ``FromFunction``: are they all equal to the first?"""
        from google.protobuf import text_format

        parse = self.handler.FromFunction.FromString
        parsed = {label: parse(base64.b64decode(data)) for label, data in replies.items()}
        first_label, first = next(iter(parsed.items()))
        differing = {
            label: text_format.MessageToString(message)
            for label, message in parsed.items()
            if message != first
        }
        if differing:
            differing[first_label] = text_format.MessageToString(first)
        return {"equal": not differing, "differing": differing}


def spin(worker: Worker, payload: str, handler: str, seconds: float) -> None:
    from .payloads import build

    worker.payloads = build()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        worker.op_time(payload, handler, 1000)


def main() -> None:
    arguments = sys.argv[1:]
    spinning = arguments[arguments.index("--spin") + 1 :] if "--spin" in arguments else []
    if spinning:
        arguments = arguments[: arguments.index("--spin")]
    impl = arguments[0]
    descriptors = arguments[1] if len(arguments) > 1 else ""
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr  # keep stray prints out of the answers
    handler, info = make_handler(impl, descriptors)
    worker = Worker(handler)
    if spinning:
        payload, handler_name, seconds = spinning
        spin(worker, payload, handler_name, float(seconds))
        return
    answers.write(json.dumps(info) + "\n")
    for line in sys.stdin:
        command = json.loads(line)
        op = command.pop("op")
        if op == "exit":
            break
        method: Callable[..., dict[str, Any]] = getattr(worker, f"op_{op}")
        try:
            answer = method(**command)
        except Exception as error:  # report it to the driver, which stops the run
            answer = {"error": f"{type(error).__name__}: {error}"}
        answers.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()
