"""Fixtures of the e2e suite: one Kafka broker for the session, and the e2e application on each
runtime with each integration, started when first needed and stopped by PID when done.

A test that fails shows the log of every process the kit started (broker, function servers,
runtimes). A runtime that cannot be had on this machine (not resolvable from Maven Central, no
JDK for it) skips its tests with the exact command and output, which the session prints.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import pytest

from . import kit


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kit.Kafka]:
    broker = kit.Kafka(tmp_path_factory.mktemp("kafka"))
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()


def runtime_or_skip(name: str) -> kit.Runtime:
    runtime = kit.ALL_RUNTIMES[name]
    try:
        runtime.prepare()
    except kit.Unavailable as error:
        pytest.skip(f"{name} is not available on this machine: {error}")
    return runtime


def start_application(
    kafka: kit.Kafka,
    runtime_name: str,
    framework: str,
    workdir: Path,
    tls: Optional[Path] = None,
    template: Path = kit.HERE / "module.yaml",
) -> kit.Application:
    """The e2e application on ``runtime_name``; on statefun-local too, so that every scenario
    is also the differential test: the same assertions hold on each runtime. With ``tls`` (see
    kit.make_pki), the functions are served over mutual TLS; ``template`` is its module.yaml."""
    prefix = f"{runtime_name}-{framework}-{uuid.uuid4().hex[:6]}-"
    if runtime_name == kit.LOCAL.name:
        app: kit.Application = kit.LocalApplication(
            kafka, kit.LOCAL, framework, workdir, prefix, tls=tls, template=template
        )
    else:
        runtime = runtime_or_skip(runtime_name)
        app = kit.Application(
            kafka, runtime, framework, workdir, prefix, tls=tls, template=template
        )
    try:
        app.start()
    except BaseException:
        app.stop()
        raise
    return app


@pytest.fixture(scope="module", params=[*sorted(kit.ALL_RUNTIMES), kit.LOCAL.name])
def runtime_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@contextmanager
def running(
    kafka: kit.Kafka,
    runtime_name: str,
    framework: str,
    workdir: Path,
    tls: Optional[Path] = None,
    template: Path = kit.HERE / "module.yaml",
) -> Iterator[kit.Application]:
    app = start_application(kafka, runtime_name, framework, workdir, tls, template)
    try:
        yield app
    finally:
        app.stop()


@pytest.fixture(scope="module")
def application(
    kafka: kit.Kafka, runtime_name: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[kit.Application]:
    """The application on ``runtime_name``, served by aiohttp: every scenario runs on it."""
    with running(kafka, runtime_name, "aiohttp", tmp_path_factory.mktemp("app")) as app:
        yield app


@pytest.fixture
def own_application(
    kafka: kit.Kafka, runtime_name: str, tmp_path: Path
) -> Iterator[kit.Application]:
    """An application of the test's own, for a test that kills or redeploys a part of it."""
    with running(kafka, runtime_name, "aiohttp", tmp_path) as app:
        yield app


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for process in kit.STARTED:
            state = "running" if process.alive() else f"exited {process.popen.returncode}"
            report.sections.append(
                (f"log of {process.name}, pid {process.pid} ({state})", process.tail())
            )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    terminalreporter.section("e2e: how long each part took")
    for what, seconds in kit.TIMINGS:
        terminalreporter.write_line(f"{seconds:7.1f} s  {what}")


def pytest_sessionfinish() -> None:
    """Whatever a test left running (it failed half-way through starting) stops here."""
    for process in kit.STARTED:
        process.stop()
