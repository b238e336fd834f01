"""The test matrix. ``nox -t ci`` is what CI runs (see README); plain ``nox`` runs everything.

Sessions install with uv when it is present. Each area keeps its sessions in its own section.
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = False

PYTHONS = ["3.9", "3.10", "3.11", "3.12", "3.13"]
NEWEST = "3.13"
# protobuf majors we support, oldest first; the newest is tested on every Python.
PROTOBUFS = ["3.20.3", "4.25.8", "5.29.5", "6.33.0", "7.36.2"]
TEST_DEPS = ["pytest>=7", "hypothesis>=6"]


def install_core(session: nox.Session, *extra: str) -> None:
    session.install("-e", ".", *TEST_DEPS, *extra)


# --- core ---------------------------------------------------------------------------------


@nox.session(python=PYTHONS, tags=["core"])
def tests(session: nox.Session) -> None:
    """The core SDK's tests on each Python, with the newest protobuf."""
    install_core(session)
    session.run("python", "-m", "pytest", "tests/core", *session.posargs)


@nox.session(python="3.11", tags=["core"])
@nox.parametrize("protobuf", PROTOBUFS)
def protobuf(session: nox.Session, protobuf: str) -> None:
    """The core SDK's tests across protobuf generations (3.20 pure-Python to 7.x upb)."""
    install_core(session, f"protobuf=={protobuf}")
    session.run("python", "-m", "pytest", "tests/core", *session.posargs)


@nox.session(python=NEWEST, tags=["ci", "core"])
def core(session: nox.Session) -> None:
    """CI's core run: the newest Python and protobuf, plus the oldest protobuf on 3.9."""
    install_core(session)
    session.run("python", "-m", "pytest", "tests/core", *session.posargs)


@nox.session(python="3.9", tags=["ci", "core"])
def core_oldest(session: nox.Session) -> None:
    """The oldest supported Python with the oldest supported protobuf."""
    install_core(session, "protobuf==3.20.3")
    session.run("python", "-m", "pytest", "tests/core", *session.posargs)


@nox.session(python=NEWEST, tags=["ci"])
def lint(session: nox.Session) -> None:
    """ruff over the whole tree."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", "statefun_core")


@nox.session(python=NEWEST, tags=["ci"])
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the core package."""
    session.install("-e", ".", "mypy", "types-protobuf")
    session.run("mypy", "--strict", "statefun_core")


@nox.session(python="3.11")
def protos(session: nox.Session) -> None:
    """Recompile statefun_core/protocol/*.proto into statefun.desc."""
    session.install("grpcio-tools")
    with session.chdir("statefun_core/protocol"):
        session.run(
            "python", "-m", "grpc_tools.protoc", "-I.", "--descriptor_set_out=statefun.desc",
            "request_reply.proto", "types.proto", "egress.proto",
        )


@nox.session(python="3.11", tags=["bench"])
def bench(session: nox.Session) -> None:
    """Ours vs the official SDK vs a no-SDK floor: see benchmarks/README.md.

    The driver is standard-library only and makes one venv per implementation under
    benchmarks/.venvs/. ``nox -s bench -- --quick`` for a short run.
    """
    session.run("python", "benchmarks/run.py", *session.posargs)


# --- plugins (issue: plugin system) -------------------------------------------------------


# --- aiohttp and tornado ------------------------------------------------------------------


# --- flask and django ---------------------------------------------------------------------

FLASK_VERSIONS = [
    nox.param("3.9", ("flask==2.3.0", "werkzeug~=2.3.0"), id="flask-2.3"),
    nox.param(NEWEST, ("flask~=3.1.0",), id="flask-3.1", tags=["ci"]),
]
DJANGO_VERSIONS = [
    nox.param("3.9", ("django~=4.2.0",), id="django-4.2"),
    nox.param("3.11", ("django~=5.2.0",), id="django-5.2"),
    nox.param(NEWEST, ("django",), id="django-newest", tags=["ci"]),  # 6.x: Python >= 3.12
]


def install_integration(session: nox.Session, name: str, *requirements: str) -> None:
    """The core, one integration (with statefun-prometheus, for /metrics) and test tools."""
    session.install(
        "-e", ".", "-e", f"integrations/{name}", "-e", "integrations/prometheus",
        *requirements, *TEST_DEPS,
    )  # fmt: skip


@nox.session(tags=["flask"])
@nox.parametrize(("python", "flask"), FLASK_VERSIONS)
def flask(session: nox.Session, flask: tuple[str, ...]) -> None:
    """statefun-flask with Flask's test client and under a real gunicorn."""
    install_integration(session, "flask", *flask, "gunicorn")
    with session.chdir("integrations/flask"):
        session.run("python", "-m", "pytest", "tests", *session.posargs)


@nox.session(tags=["django"])
@nox.parametrize(("python", "django"), DJANGO_VERSIONS)
def django(session: nox.Session, django: tuple[str, ...]) -> None:
    """statefun-django with Django's test clients, under gunicorn (WSGI) and uvicorn (ASGI)."""
    install_integration(session, "django", *django, "gunicorn", "uvicorn", "opentelemetry-sdk")
    with session.chdir("integrations/django"):
        session.run("python", "-m", "pytest", "tests", *session.posargs)


@nox.session(python="3.11", tags=["bench"])
def bench_flask_django(session: nox.Session) -> None:
    """Flask and Django: our endpoint against a bare view, gunicorn sync workers, wrk."""
    session.install("-e", ".", "-e", "integrations/flask", "-e", "integrations/django", "gunicorn")
    session.run("python", "benchmarks/http/flask_django_wrk.py", *session.posargs)


# --- engine, testing harness --------------------------------------------------------------


@nox.session(python=NEWEST, tags=["ci", "engine"])
def engine(session: nox.Session) -> None:
    """The runtime engine's rules and the test harness (with its pytest plugin)."""
    install_core(session)
    session.run("python", "-m", "pytest", "tests/engine", "tests/testing", *session.posargs)


@nox.session(python="3.9", tags=["ci", "engine"])
def engine_oldest(session: nox.Session) -> None:
    """The engine and harness on the oldest Python and protobuf."""
    install_core(session, "protobuf==3.20.3")
    session.run("python", "-m", "pytest", "tests/engine", "tests/testing", *session.posargs)


# --- local runtime ------------------------------------------------------------------------
