"""``statefun_endpoints``: plugins contribute HTTP endpoints; the core's health endpoints; and
no integration imports a plugin package by name."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any, Mapping

import pytest

from statefun_core import RequestReplyHandler, StatefulFunctions, make_plugin_manager
from statefun_core.errors import PluginError
from statefun_core.plugins import (
    Endpoint,
    EndpointResponse,
    HealthEndpoints,
    allowed_methods,
    find_endpoint,
    header,
    hookimpl,
)

from .test_hooks import make_functions

ROOT = Path(__file__).resolve().parents[2]
# the framework integrations: each one's entry-point module names its FRAMEWORK
INTEGRATIONS = sorted(
    path.parents[2].name
    for path in ROOT.glob("integrations/*/src/*/plugin.py")
    if "\nFRAMEWORK = " in path.read_text(encoding="utf-8")
)
PLUGIN_PACKAGES = {
    "statefun_prometheus",
    "statefun_opentelemetry",
    "statefun_pydantic",
    "statefun_msgpack",
    "statefun_slow_batches",
}


class Hello:
    @hookimpl
    def statefun_endpoints(self, handler: Any) -> list[Endpoint]:
        def hello(headers: Mapping[str, str]) -> EndpointResponse:
            return EndpointResponse(200, {"Content-Type": "text/plain"}, b"hello")

        def broken(headers: Mapping[str, str]) -> EndpointResponse:
            raise RuntimeError("endpoint bug")

        return [Endpoint("GET", "/hello", hello), Endpoint("POST", "/broken", broken)]


def handler(*plugins: Any) -> RequestReplyHandler:
    manager = make_plugin_manager(plugins, load_entrypoints=False)
    return RequestReplyHandler(make_functions(), plugins=manager)


def test_hook_statefun_endpoints(caplog: pytest.LogCaptureFixture) -> None:
    served = handler(Hello())
    assert [(e.method, e.path) for e in served.endpoints] == [
        ("GET", "/hello"),
        ("POST", "/broken"),
    ]
    hello = served.endpoint_for("GET", "/hello")
    assert hello is not None and hello.respond({}) == (
        200,
        {"Content-Type": "text/plain"},
        b"hello",
    )
    assert served.endpoint_for("HEAD", "/hello") is hello
    assert served.endpoint_for("POST", "/hello") is None
    assert served.endpoint_for("GET", "/nowhere") is None
    broken = served.endpoint_for("POST", "/broken")
    assert broken is not None
    status, _, body = broken.respond({})
    assert (status, body) == (500, b"endpoint failed")  # no traceback to the caller
    assert "endpoint POST /broken failed" in caplog.text
    assert handler().endpoints == ()


def test_header_reads_a_plain_dict_whatever_the_case_and_prefers_the_exact_name() -> None:
    headers = {"Accept": "text/plain", "X-Token": "upper", "x-token": "lower"}
    assert header(headers, "Accept") == header(headers, "ACCEPT") == "text/plain"
    assert (header(headers, "X-Token"), header(headers, "x-token")) == ("upper", "lower")
    assert header(headers, "x-TOKEN") == "upper"  # the first of any case
    assert header(headers, "Authorization") is None


def test_the_allow_header_at_a_path_names_its_methods_and_head_beside_get() -> None:
    def ok(headers: Mapping[str, str]) -> EndpointResponse:
        return EndpointResponse(200, {}, b"")

    get, post, put = (
        Endpoint("GET", "/a", ok),
        Endpoint("POST", "/a", ok),
        Endpoint("PUT", "/b", ok),
    )
    endpoints = [get, post, put]
    assert allowed_methods(endpoints, "/a") == "GET, HEAD, POST"
    assert allowed_methods(endpoints, "/b") == "PUT"
    assert allowed_methods(endpoints, "/c") == ""
    assert find_endpoint(endpoints, "HEAD", "/a") is get
    assert find_endpoint(endpoints, "PUT", "/a") is None


def test_two_plugins_with_one_endpoint_is_a_plugin_error() -> None:
    with pytest.raises(PluginError, match="GET /hello"):
        handler(Hello(), Hello())


def test_two_plugins_with_one_endpoint_are_both_named() -> None:
    class Other(Hello):
        pass

    with pytest.raises(PluginError, match="GET /hello: by 'Other' and by 'Hello'"):
        handler(Hello(), Other())


class UnderInternal:
    """A hook wrapper that moves the other plugins' endpoints under /internal."""

    @hookimpl(wrapper=True)
    def statefun_endpoints(self, handler: Any) -> Any:
        contributed = yield
        return [
            [Endpoint(e.method, f"/internal{e.path}", e.handle) for e in c] for c in contributed
        ]


def test_a_wrapper_of_statefun_endpoints_sees_and_changes_what_the_plugins_return() -> None:
    assert [(e.method, e.path) for e in handler(Hello(), UnderInternal()).endpoints] == [
        ("GET", "/internal/hello"),
        ("POST", "/internal/broken"),
    ]


def test_statefun_endpoints_is_called_through_pluggy_so_tracing_shows_it() -> None:
    manager = make_plugin_manager([Hello()], load_entrypoints=False)
    called: list[str] = []
    manager.add_hookcall_monitoring(
        lambda name, impls, kwargs: called.append(name), lambda *a: None
    )
    RequestReplyHandler(make_functions(), plugins=manager)
    assert "statefun_endpoints" in called


class Contributes:
    def __init__(self, contributed: Any) -> None:
        self.contributed = contributed

    @hookimpl
    def statefun_endpoints(self, handler: Any) -> Any:
        if isinstance(self.contributed, Exception):
            raise self.contributed
        return self.contributed


def ok(headers: Mapping[str, str]) -> EndpointResponse:
    return EndpointResponse(200, {}, b"")


async def answers_later(headers: Mapping[str, str]) -> EndpointResponse:
    return EndpointResponse(200, {}, b"")


@pytest.mark.parametrize(
    ("contributed", "said"),
    [
        (RuntimeError("no config"), "raised in statefun_endpoints: RuntimeError: no config"),
        (Endpoint("GET", "/x", ok), "returned Endpoint.*expected a list of Endpoint"),
        ([("GET", "/x", ok)], "returned tuple.*expected a list of Endpoint"),
        ([Endpoint("GET", "x", ok)], "path 'x' of GET x does not start with '/'"),
        ([Endpoint("get", "/x", ok)], "method 'get' of get /x is not an upper-case HTTP method"),
        ([Endpoint("GET", "/x", answers_later)], "handle of GET /x is async: an endpoint's"),
    ],
)
def test_a_broken_statefun_endpoints_fails_the_handler_build_naming_the_plugin(
    contributed: Any, said: str
) -> None:
    with pytest.raises(PluginError, match=f"^statefun plugin 'Contributes' {said}"):
        handler(Contributes(contributed))


def test_an_endpoint_that_answers_no_response_is_a_logged_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    for answer in (None, (200, {}, "text"), (200, b"body")):
        endpoint = Endpoint("GET", "/x", lambda headers, answer=answer: answer)
        caplog.clear()
        assert endpoint.respond({}) == (
            500,
            {"Content-Type": "text/plain; charset=utf-8"},
            b"endpoint failed",
        )
        assert "endpoint GET /x answered" in caplog.text
    fine = Endpoint("GET", "/x", lambda headers: (200, {"A": "b"}, b"body"))
    assert fine.respond({}) == (200, {"A": "b"}, b"body")


def test_an_endpoint_where_the_functions_are_served_is_a_plugin_error() -> None:
    from statefun_core.asgi import StatefunASGI
    from statefun_core.aws_lambda import LambdaHandler
    from statefun_core.wsgi import StatefunWSGI

    class AtRoot:
        @hookimpl
        def statefun_endpoints(self) -> list[Endpoint]:
            return [Endpoint("GET", "/", ok)]

    served = handler(AtRoot(), Hello())
    served.check_endpoints_clear_of("/statefun")
    for path in ("/", ""):
        with pytest.raises(PluginError, match=r"^statefun plugin 'AtRoot' contributes .*GET /"):
            served.check_endpoints_clear_of(path)
    with pytest.raises(PluginError, match="'Hello' contributes the endpoint GET /hello where"):
        served.check_endpoints_clear_of("/hello/")
    for app in (StatefunASGI, StatefunWSGI):
        with pytest.raises(PluginError, match="'AtRoot' contributes the endpoint GET / where"):
            app(served)
        app(served, endpoints=False)  # not served: no conflict
    LambdaHandler(served)  # every path is the function endpoint: no endpoint is served


def test_an_endpoint_answer_no_server_could_write_is_a_logged_500_and_its_length_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    unwritable = [
        (200, {"X-Count": 5}, b"body"),
        (200, {"X-Split": "a\r\nInjected: yes"}, b"body"),
        (200, {"Bad Name": "x"}, b"body"),
        (999, {}, b"body"),
    ]
    for answer in unwritable:
        endpoint = Endpoint("GET", "/x", lambda headers, answer=answer: answer)
        caplog.clear()
        assert endpoint.respond({}).status == 500
        assert "endpoint GET /x answered" in caplog.text
    framed = {"Content-Length": "2", "Transfer-Encoding": "chunked", "Content-Type": "text/plain"}
    endpoint = Endpoint("GET", "/x", lambda headers: (200, framed, b"hello"))
    assert endpoint.respond({}) == (200, {"Content-Type": "text/plain"}, b"hello")


def test_health_is_off_by_default_and_on_with_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STATEFUN_HEALTH", raising=False)
    assert handler().endpoint_for("GET", "/health/live") is None
    monkeypatch.setenv("STATEFUN_HEALTH", "TRUE")
    served = handler()
    live = served.endpoint_for("GET", "/health/live")
    ready = served.endpoint_for("GET", "/health/ready")
    assert live is not None and live.respond({}).status == 200
    assert ready is not None
    status, headers, body = ready.respond({})
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"status": "ready", "functions": 3}  # no function names
    assert b"test/" not in body


def test_health_names_the_functions_only_when_configured() -> None:
    ready = handler(HealthEndpoints("/healthz/", show_functions=True)).endpoint_for(
        "GET", "/healthz/ready"
    )
    assert ready is not None
    assert json.loads(ready.respond({}).body)["typenames"] == [
        "test/async",
        "test/blocking",
        "test/sync",
    ]


def test_health_endpoints_registered_by_hand_serve_at_health_without_the_names() -> None:
    served = handler(HealthEndpoints())
    live = served.endpoint_for("GET", "/health/live")
    ready = served.endpoint_for("GET", "/health/ready")
    assert live is not None and live.respond({}).body == b'{"status": "live"}'
    assert ready is not None
    assert json.loads(ready.respond({}).body) == {"status": "ready", "functions": 3}


def test_health_counts_a_function_bound_after_the_handler_was_made() -> None:
    """The handler serves it (resolved at the bind): readiness names it too."""
    functions = make_functions()
    plugins = make_plugin_manager([HealthEndpoints(show_functions=True)], load_entrypoints=False)
    ready = RequestReplyHandler(functions, plugins=plugins).endpoint_for("GET", "/health/ready")
    functions.register("test/later", lambda context, message: None)
    assert ready is not None
    assert json.loads(ready.respond({}).body) == {
        "status": "ready",
        "functions": 4,
        "typenames": ["test/async", "test/blocking", "test/later", "test/sync"],
    }


def test_health_counts_the_functions_a_handler_was_given_since() -> None:
    functions = make_functions()
    plugins = make_plugin_manager([HealthEndpoints(show_functions=True)], load_entrypoints=False)
    handler = RequestReplyHandler(functions, plugins=plugins)
    ready = handler.endpoint_for("GET", "/health/ready")
    others = StatefulFunctions()
    others.register("test/other", lambda context, message: None)
    handler.functions = others
    assert ready is not None
    assert json.loads(ready.respond({}).body) == {
        "status": "ready",
        "functions": 1,
        "typenames": ["test/other"],
    }


def _names_an_import(func: ast.expr) -> bool:
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name in ("import_module", "__import__")


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and _names_an_import(node.func) and node.args:
            first = node.args[0]  # importlib.import_module("statefun_prometheus") and the like
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                names.add(first.value.split(".")[0])
    return names


def test_the_integrations_are_found() -> None:
    assert {"aiohttp", "tornado", "flask", "django"} <= set(INTEGRATIONS), INTEGRATIONS


@pytest.mark.parametrize("integration", INTEGRATIONS)
def test_no_integration_module_imports_a_plugin_package(integration: str) -> None:
    sources = sorted((ROOT / "integrations" / integration / "src").rglob("*.py"))
    assert sources
    for path in sources:
        named = imported_modules(path) & PLUGIN_PACKAGES
        assert not named, f"{path.relative_to(ROOT)} imports {sorted(named)}"


def test_no_core_module_imports_a_plugin_package() -> None:
    """The plain ASGI/WSGI apps and the Lambda handler serve plugins' endpoints by the hook too."""
    for path in sorted((ROOT / "statefun_core").rglob("*.py")):
        named = imported_modules(path) & PLUGIN_PACKAGES
        assert not named, f"{path.relative_to(ROOT)} imports {sorted(named)}"
