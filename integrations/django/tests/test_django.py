"""statefun_django through Django's test clients (sync and async views), real protobuf bytes."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import subprocess
import sys
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import django
import pytest
from django.test import AsyncClient, Client, RequestFactory, override_settings
from django.urls import resolve, reverse
from statefun_django import conf
from statefun_django.views import AsyncStatefunView, RequestHeaders, StatefunView, endpoint_view

from statefun_core import Limits, make_plugin_manager
from statefun_core.engine import StateSpec
from statefun_core.errors import MethodNotAllowedError, RequestTooLargeError
from statefun_core.testing import wire
from statefun_core.testing.endpoint import (
    FAILING,
    GREETER,
    INBOX,
    NEW,
    FailureRecorder,
    HeaderRecorder,
    greetings,
    missing_plugins,
)
from statefun_core.testing.packaging import check_import_guard

LIMIT = 64 * 1024  # DATA_UPLOAD_MAX_MEMORY_SIZE of the test project
# The example plugin's endpoint, which the sdist's tests may run without.
MISSING_PLUGINS = missing_plugins()
needs_plugins = pytest.mark.skipif(bool(MISSING_PLUGINS), reason=MISSING_PLUGINS)

Post = Callable[..., Any]


def sync_post(path: str, body: bytes, method: str = "post", **headers: str) -> Any:
    send = getattr(Client(), method)
    return send(path, body, content_type="application/octet-stream", headers=headers)


def async_post(path: str, body: bytes, method: str = "post", **headers: str) -> Any:
    send = getattr(AsyncClient(), method)
    return asyncio.run(send(path, body, content_type="application/octet-stream", headers=headers))


@pytest.fixture(params=["sync", "async"])
def post(request: pytest.FixtureRequest) -> Post:
    """POST to one view with the matching client: sync under WSGI, async under ASGI."""
    path, send = {"sync": ("/sync/", sync_post), "async": ("/async/", async_post)}[request.param]
    return lambda body, **kwargs: send(path, body, **kwargs)


def test_greeter_reply(post: Post) -> None:
    response = post(wire.to_function(GREETER, "Ann", ["Ann"], {"seen_count": 2}))
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert greetings(response.content) == (3, [(INBOX, "Ann", "Hello Ann for the 3th time!")])


def test_state_discovery(post: Post) -> None:
    response = post(wire.to_function(GREETER, "Ann", ["Ann"]))
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert wire.missing_states(response.content) == [
        StateSpec("seen_count", "io.statefun.types/int")
    ]


def test_batch(post: Post) -> None:
    response = post(wire.to_function(GREETER, "Bo", ["Bo", "Cy", "Bo"], NEW))
    seen, sent = greetings(response.content)
    assert seen == 3
    assert [greeting for _, _, greeting in sent] == [
        "Hello Bo for the 1th time!",
        "Hello Cy for the 2th time!",
        "Hello Bo for the 3th time!",
    ]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"\xff\xff\xff", 400),
        (b"", 400),
        (wire.to_function("com.example.fns/nobody", "x", ["x"], NEW), 404),
        (wire.to_function(GREETER, "Ann", ["x" * LIMIT], NEW), 413),
        (wire.to_function(FAILING, "x", ["x"]), 500),
    ],
    ids=["malformed", "empty", "unknown-function", "too-large", "function-fails"],
)
def test_error_statuses(post: Post, body: bytes, status: int) -> None:
    response = post(body)
    assert response.status_code == status
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    text = response.content.decode()
    assert 0 < len(text) < 200  # one short line, no traceback
    assert "\n" not in text
    assert "Traceback" not in text
    assert "on purpose" not in text


@pytest.mark.parametrize(
    ("body", "method", "level"),
    [
        (b"\xff\xff\xff", "post", logging.WARNING),
        (wire.to_function("com.example.fns/nobody", "x", ["x"], NEW), "post", logging.WARNING),
        (wire.to_function(GREETER, "Ann", ["x" * LIMIT], NEW), "post", logging.WARNING),
        (wire.to_function(FAILING, "x", ["x"]), "post", logging.ERROR),
        (b"", "get", logging.INFO),
    ],
    ids=["malformed", "unknown-function", "too-large", "function-fails", "wrong-method"],
)
def test_a_failed_request_is_logged_once(
    post: Post, body: bytes, method: str, level: int, caplog: pytest.LogCaptureFixture
) -> None:
    """By the core, with the function's trace and log context; not again by django.request
    (an alert on error lines would fire twice per failed batch, mail_admins mail each retry)."""
    with caplog.at_level(logging.INFO):
        post(body, method=method)
    assert [(r.name, r.levelno) for r in caplog.records] == [("statefun_core", level)], caplog.text


@pytest.mark.parametrize("method", ["get", "put", "delete", "options", "head"])
def test_only_post_is_allowed(post: Post, method: str) -> None:
    response = post(b"", method=method)
    assert response.status_code == 405
    assert response["Allow"] == "POST"


def test_a_subclass_overriding_dispatch_is_served_through_it() -> None:
    """The views answer in the view function itself, unless a subclass overrides setup or
    dispatch (a ``method_decorator``): then Django's view calls them."""
    from django.urls import path

    class Tagged(StatefunView):
        def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            response = super().dispatch(request, *args, **kwargs)
            response["X-Tagged"] = self.request.path
            return response

    class Urls:
        urlpatterns = [path("tagged", Tagged.as_view())]

    with override_settings(ROOT_URLCONF=Urls):
        client = Client(enforce_csrf_checks=True)
        body = wire.to_function(GREETER, "Ann", ["Ann"], {"seen_count": 2})
        served = client.post("/tagged", body, content_type="application/octet-stream")
        assert (served.status_code, served["X-Tagged"]) == (200, "/tagged")
        assert greetings(served.content) == (3, [(INBOX, "Ann", "Hello Ann for the 3th time!")])
        refused = client.get("/tagged")
        assert (refused.status_code, refused["Allow"], refused["X-Tagged"]) == (
            405,
            "POST",
            "/tagged",
        )


def test_endpoint_needs_no_csrf_token() -> None:
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        "/statefun/",
        wire.to_function(GREETER, "Ann", ["Ann"], NEW),
        content_type="application/octet-stream",
    )
    assert response.status_code == 200


LOGIN_REQUIRED_SETTINGS = """
from tests.project.settings import *
INSTALLED_APPS = [
    "django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions",
    "statefun_django",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "statefun_django.middleware.statefun_middleware",
]
"""

LOGIN_REQUIRED_REQUESTS = """
import django; django.setup()
from django.test import Client
from statefun_core.testing import wire
from statefun_core.testing.endpoint import GREETER, NEW
client = Client()
for path in ("/statefun", "/sync/", "/async/"):
    body = wire.to_function(GREETER, "Ann", ["Ann"], NEW)
    response = client.post(path, body, content_type="application/octet-stream")
    print(path, response.status_code, client.put(path).status_code)
print("metrics", client.get("/statefun/metrics").status_code)
"""


def test_endpoint_needs_no_login_behind_login_required_middleware(tmp_path: Path) -> None:
    """Django 5.1's LoginRequiredMiddleware sends every view not marked login_not_required to
    the login page (302): the runtime's POST carries no session, and does not follow it. In a
    fresh process: django.contrib.auth installed for a test would stay in the check registry."""
    if django.VERSION < (5, 1):
        pytest.skip("LoginRequiredMiddleware is Django 5.1's")
    (tmp_path / "login_settings.py").write_text(LOGIN_REQUIRED_SETTINGS)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "login_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(Path(__file__).parents[1])]),
    }
    command = [sys.executable, "-c", LOGIN_REQUIRED_REQUESTS]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.stdout.splitlines()[:3] == [
        "/statefun 200 405",
        "/sync/ 200 405",
        "/async/ 200 405",
    ], done.stdout + done.stderr
    if find_spec("statefun_prometheus") is not None:
        # the plugins' endpoints are the project's to expose: they follow the middleware
        assert done.stdout.splitlines()[3] == "metrics 302", done.stdout


@pytest.fixture
def recorder() -> Iterator[HeaderRecorder]:
    recorder = HeaderRecorder("traceparent", "content-type")
    plugins = conf.get_handler().plugins
    plugins.register(recorder)
    yield recorder
    plugins.unregister(recorder)


@pytest.fixture
def failures() -> Iterator[FailureRecorder]:
    failures = FailureRecorder()
    plugins = conf.get_handler().plugins
    plugins.register(failures)
    yield failures
    plugins.unregister(failures)


def test_framework_rejections_reach_the_hooks(post: Post, failures: FailureRecorder) -> None:
    assert post(b"", method="get", x_request_id="r-1").status_code == 405
    assert post(b"\x00" * (LIMIT + 1), x_request_id="r-2").status_code == 413
    assert failures.failures == [
        (MethodNotAllowedError, 405, "r-1"),
        (RequestTooLargeError, 413, "r-2"),
    ]
    assert failures.batches == [None, None]  # rejected before a batch existed


TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_request_headers_reach_the_plugins(post: Post, recorder: HeaderRecorder) -> None:
    post(wire.to_function(GREETER, "Ann", ["Ann"], NEW), traceparent=TRACEPARENT)
    assert recorder.headers[-1]["traceparent"] == TRACEPARENT
    assert recorder.headers[-1]["content-type"] == "application/octet-stream"


def test_middleware_passes_the_current_span_context(recorder: HeaderRecorder) -> None:
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer(__name__)
    with tracer.start_as_current_span("http server") as span:
        sync_post(
            "/sync/",
            wire.to_function(GREETER, "Ann", ["Ann"], NEW),
            traceparent=TRACEPARENT,
        )
    trace_id = format(span.get_span_context().trace_id, "032x")
    assert recorder.headers[-1]["traceparent"].split("-")[1] == trace_id


def test_the_async_middleware_passes_the_current_span_context(recorder: HeaderRecorder) -> None:
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer(__name__)
    with tracer.start_as_current_span("http server") as span:
        async_post(
            "/async/", wire.to_function(GREETER, "Ann", ["Ann"], NEW), traceparent=TRACEPARENT
        )
    trace_id = format(span.get_span_context().trace_id, "032x")
    assert recorder.headers[-1]["traceparent"].split("-")[1] == trace_id


def test_without_the_middleware_the_runtimes_headers_pass(recorder: HeaderRecorder) -> None:
    with override_settings(MIDDLEWARE=[]):
        sync_post(
            "/sync/",
            wire.to_function(GREETER, "Ann", ["Ann"], NEW),
            traceparent=TRACEPARENT,
        )
    assert recorder.headers[-1]["traceparent"] == TRACEPARENT


@pytest.mark.parametrize("path", ["/sync/", "/async/"])
def test_every_reply_has_its_length_without_common_middleware(path: str) -> None:
    """A Django response without Content-Length is sent chunked by the server (gunicorn,
    uvicorn): under gunicorn one more write per request, some 12 us of a worker's CPU
    (benchmarks/README.md). The function's replies, its errors and the plugins' endpoints set
    it."""
    send = sync_post if path == "/sync/" else async_post
    with override_settings(MIDDLEWARE=[]):
        replies = [
            send(path, wire.to_function(GREETER, "Ann", ["Ann"], NEW)),
            send(path, b"\xff"),
            send(path, b"", method="get"),
            sync_post("/statefun/metrics", b"", method="get"),  # statefun-prometheus
            sync_post("/statefun/metrics", b"", method="post"),
        ]
    assert [reply.status_code for reply in replies] == [200, 400, 405, 200, 405]
    for reply in replies:
        assert reply["Content-Length"] == str(len(reply.content)), reply


# --- settings, URLs, views ----------------------------------------------------------------


def test_include_names_the_endpoint() -> None:
    assert reverse("statefun:endpoint") == "/statefun"
    assert resolve("/statefun/").app_name == "statefun"


@pytest.mark.parametrize("urlconf", ["tests.project.urls", "tests.project.urls_flat"])
@pytest.mark.parametrize("path", ["/statefun", "/statefun/"])
def test_the_documented_routes_serve_the_path_with_and_without_a_slash(
    urlconf: str, path: str
) -> None:
    """module.yaml files name /statefun; the runtime follows no redirect. ``urls`` routes
    with the include, ``urls_flat`` with statefun_urls."""
    with override_settings(ROOT_URLCONF=urlconf, DEBUG=True, APPEND_SLASH=True):
        response = Client().post(
            path,
            wire.to_function(GREETER, "Ann", ["Ann"], {"seen_count": 0}),
            content_type="application/octet-stream",
        )
    assert response.status_code == 200
    assert greetings(response.content) == (1, [(INBOX, "Ann", "Hello Ann for the 1th time!")])


@pytest.mark.parametrize("urlconf", ["tests.project.urls", "tests.project.urls_flat"])
def test_the_endpoint_path_is_found_for_both_routes(urlconf: str) -> None:
    """What statefun_serve prints and checks W002 and W004 look at."""
    with override_settings(ROOT_URLCONF=urlconf):
        assert conf.endpoint_path() == "/statefun"


def test_statefun_urls_need_a_path() -> None:
    from statefun_django.urls import statefun_urls

    with pytest.raises(ValueError, match="needs a path"):
        statefun_urls("/")


def test_statefun_urls_name_the_endpoint() -> None:
    with override_settings(ROOT_URLCONF="tests.project.urls_flat"):
        assert reverse("statefun-endpoint") == "/statefun"


@pytest.mark.parametrize("path", ["/statefunny", "/statefun/x", "/statefunmetrics", "/x/statefun"])
def test_statefun_urls_take_no_other_path(path: str) -> None:
    with override_settings(ROOT_URLCONF="tests.project.urls_flat"):
        response = Client().post(path, b"", content_type="application/octet-stream")
    if path == "/statefunny":
        assert response.content == b"the project's own view"
    else:
        assert response.status_code == 404


def test_statefun_urls_resolve_in_one_step() -> None:
    """Flat patterns: no nested resolver (include()) between the root and the view."""
    with override_settings(ROOT_URLCONF="tests.project.urls_flat"):
        match = resolve("/statefun")
    assert match.url_name == "statefun-endpoint" and match.namespaces == []


def test_settings_are_reloaded_when_they_change() -> None:
    before = conf.get_handler()
    with override_settings(STATEFUN={"FUNCTIONS": "tests.functions.duplicate"}):
        assert conf.get_settings()["FUNCTIONS"] == "tests.functions.duplicate"
        assert conf.get_handler() is not before
        response = sync_post("/sync/", wire.to_function(GREETER, "Ann", ["Ann"], {"seen_count": 0}))
        assert greetings(response.content)[0] == 1
    assert conf.get_settings()["FUNCTIONS"] == "tests.functions.functions"


def test_limits_setting_reaches_the_handler() -> None:
    from statefun_core import Limits

    statefun = {"FUNCTIONS": "tests.functions.functions", "LIMITS": {"request_bytes": 300}}
    with override_settings(STATEFUN=statefun):
        assert conf.get_handler().limits == Limits(request_bytes=300)
        small = wire.to_function(GREETER, "Ann", ["Ann"], {"seen_count": 0})
        assert sync_post("/sync/", small).status_code == 200
        large = wire.to_function(GREETER, "Ann", ["x" * 400], {"seen_count": 0})
        assert sync_post("/sync/", large).status_code == 413
    with override_settings(STATEFUN={"FUNCTIONS": "tests.functions.functions"}):
        assert conf.get_handler().limits == Limits()


def limited(request_bytes: int, data_upload: Optional[int] = None) -> Any:
    """The handler's limit of ``request_bytes``, and DATA_UPLOAD_MAX_MEMORY_SIZE."""
    statefun = {
        "FUNCTIONS": "tests.functions.functions",
        "LIMITS": {"request_bytes": request_bytes},
    }
    return override_settings(STATEFUN=statefun, DATA_UPLOAD_MAX_MEMORY_SIZE=data_upload)


def test_a_body_of_exactly_the_handlers_limit_is_served(post: Post) -> None:
    body = wire.to_function(GREETER, "Ann", ["Ann"], {"seen_count": 0})
    with limited(len(body)):
        assert greetings(post(body).content)[0] == 1
        assert post(body + b"\x00").status_code == 413


def test_under_asgi_a_declared_length_over_the_handlers_limit_is_413_unread() -> None:
    """Content-Length 9 over a limit of 8, no body sent: refused by the length (not a 400)."""
    with limited(8):
        response = async_post("/async/", b"", content_length="9")
    assert response.status_code == 413
    assert b"body is 9 bytes, over the limit of 8 bytes (Limits.request_bytes)" in response.content


def post_chunked(stream: io.BytesIO) -> Any:
    """A chunked body as gunicorn hands it over: no Content-Length, the input ended."""
    chunked = {"CONTENT_LENGTH": "", "wsgi.input": stream, "wsgi.input_terminated": True}
    return Client().post("/sync/", b"", content_type="application/octet-stream", **chunked)


@pytest.mark.parametrize("setting", ["DATA_UPLOAD_MAX_MEMORY_SIZE", "Limits.request_bytes"])
def test_a_chunked_body_is_read_to_one_byte_over_the_limit_at_most(setting: str) -> None:
    body = wire.to_function(GREETER, "Ann", ["Ann"], {"seen_count": 0})
    data_upload = len(body) if setting == "DATA_UPLOAD_MAX_MEMORY_SIZE" else None
    with limited(len(body) if data_upload is None else LIMIT, data_upload):
        assert greetings(post_chunked(io.BytesIO(body)).content)[0] == 1
        stream = io.BytesIO(body + b"\x00" * 100)
        response = post_chunked(stream)
    assert response.status_code == 413
    assert f"over the limit of {len(body)} bytes ({setting})".encode() in response.content
    assert len(stream.read()) == 99  # the rest left unread


def test_the_hooks_see_the_request_headers_as_a_mapping() -> None:
    request = RequestFactory().post("/", headers={"Traceparent": "t", "X-Other": "o"})
    headers = RequestHeaders(request)
    assert headers["traceparent"] == "t"
    assert len(headers) == len(request.headers) == len(list(headers))
    assert bool(headers) is True
    assert dict(headers)["X-Other"] == "o"


def test_a_limits_object_in_the_setting_is_the_handlers_limits() -> None:
    statefun = {"FUNCTIONS": "tests.functions.functions", "LIMITS": Limits(request_bytes=300)}
    with override_settings(STATEFUN=statefun):
        assert conf.get_handler().limits == Limits(request_bytes=300)


def test_several_collections_are_served_together() -> None:
    from statefun_core import StatefulFunctions

    other = StatefulFunctions()
    other.register("com.example.fns/other", lambda context, message: None)
    with override_settings(STATEFUN={"FUNCTIONS": ["tests.functions.functions", other]}):
        functions = conf.get_handler().functions
        assert {f.typename for f in functions} == {GREETER, FAILING, "com.example.fns/other"}


def test_served_together_a_function_keeps_what_makes_its_failures_final() -> None:
    from statefun_core import DeadLetterEgress, StatefulFunctions

    def fails(context: Any, message: Any) -> None:
        raise ValueError("never succeeds")

    final, other = StatefulFunctions(), StatefulFunctions()
    dead_letters = DeadLetterEgress("com.example/dead-letters")
    final.register("com.example.fns/final", fails, final_errors=[ValueError],
                   final_unreadable=True, dead_letters=dead_letters)  # fmt: skip
    other.register("com.example.fns/other", lambda context, message: None)
    with override_settings(STATEFUN={"FUNCTIONS": [final, other]}):
        served = conf.get_handler().functions.for_typename("com.example.fns/final")
        assert (served.final_errors, served.final_unreadable, served.dead_letters) == (
            (ValueError,), True, dead_letters
        )  # fmt: skip
        body = wire.to_function("com.example.fns/final", "x", ["x"])
        response = Client().post("/sync/", body, content_type="application/octet-stream")
        assert response.status_code == 200  # dead-lettered, not a 500 retried for ever


def test_served_together_a_function_bound_later_is_served() -> None:
    from statefun_core import StatefulFunctions
    from statefun_core.testing.endpoint import make_functions

    greeter = make_functions().for_typename(GREETER)
    first, later = StatefulFunctions(), StatefulFunctions()
    first.register("com.example.fns/other", lambda context, message: None)
    with override_settings(STATEFUN={"FUNCTIONS": [first, later]}):
        conf.get_handler()  # built (by the system checks, say) before the module binds
        later.bind(GREETER, specs=greeter.specs)(greeter.fun)
        response = sync_post("/sync/", wire.to_function(GREETER, "Ann", ["Ann"], {"seen_count": 2}))
        assert response.status_code == 200
        assert greetings(response.content) == (3, [(INBOX, "Ann", "Hello Ann for the 3th time!")])

        def again(context: Any, message: Any) -> None:
            pass

        later.register(GREETER, again)  # bound again in its own collection: replaced
        assert conf.get_handler().functions.for_typename(GREETER).fun is again
        with pytest.raises(conf.StatefunConfigError, match="more than one") as raised:
            first.register(GREETER, again)  # bound in another collection: E004, not served
        assert raised.value.id == "statefun.E004"
        assert GREETER not in first
        assert conf.get_handler().functions.for_typename(GREETER).fun is again


@pytest.mark.parametrize(
    ("setting", "view_class"), [(False, StatefunView), (True, AsyncStatefunView)]
)
def test_async_setting_picks_the_view(setting: bool, view_class: type) -> None:
    with override_settings(STATEFUN={"FUNCTIONS": "tests.functions.functions", "ASYNC": setting}):
        assert endpoint_view().view_class is view_class  # type: ignore[attr-defined]


def test_by_default_the_view_follows_the_event_loop() -> None:
    async def inside_a_loop() -> type:
        return endpoint_view().view_class  # type: ignore[attr-defined,no-any-return]

    assert endpoint_view().view_class is StatefunView  # type: ignore[attr-defined]
    assert asyncio.run(inside_a_loop()) is AsyncStatefunView


@pytest.mark.parametrize("urlconf", ["tests.project.urls", "tests.project.urls_flat"])
def test_metrics_when_statefun_prometheus_is_installed(urlconf: str) -> None:
    pytest.importorskip("statefun_prometheus")
    with override_settings(ROOT_URLCONF=urlconf):
        sync_post("/statefun/", wire.to_function(GREETER, "Ann", ["Ann"], {"seen_count": 0}))
        response = Client().get("/statefun/metrics")
    assert response.status_code == 200
    assert b"statefun_" in response.content


def test_endpoints_of_two_methods_at_one_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """One pattern per path: each method finds its endpoint, HEAD only a GET one."""
    from statefun_django.urls import statefun_urls

    from statefun_core.plugins import manager

    installed = list(manager._entry_points())
    ping = metadata.EntryPoint("ping", "tests.functions:ping", "statefun")
    monkeypatch.setattr(manager, "_entry_points", lambda: [*installed, ping])
    with override_settings(STATEFUN={"FUNCTIONS": "tests.functions.functions"}):

        class Urls:
            urlpatterns = statefun_urls("statefun")

        with override_settings(ROOT_URLCONF=Urls):
            client = Client()
            got, posted = client.get("/statefun/ping"), client.post("/statefun/ping")
            assert (got.status_code, got.content) == (200, b"got")
            assert (posted.status_code, posted.content) == (202, b"posted")
            assert client.head("/statefun/ping").status_code == 200
            refused = client.put("/statefun/ping")
            assert (refused.status_code, refused["Allow"]) == (405, "GET, HEAD, POST")
            refused = client.head("/statefun/pong")
            assert (refused.status_code, refused["Allow"]) == (405, "POST")
            assert reverse("statefun-ping") == "/statefun/ping"


URLCONFS = [
    "tests.project.urls",  # re_path(r"^statefun/?", include(...))
    "tests.project.urls_flat",  # statefun_urls("statefun")
    "tests.project.urls_with_slash",  # path("statefun/", include(...))
    "tests.project.urls_no_slash",  # path("statefun", include(...))
]


@needs_plugins
@pytest.mark.parametrize("urlconf", URLCONFS)
def test_the_plugins_endpoints_are_served_under_the_endpoints_path(urlconf: str) -> None:
    """Whether or not the include's prefix ends in a slash: never at /statefunslow-batches."""
    with override_settings(ROOT_URLCONF=urlconf):
        assert Client().get("/statefun/slow-batches").status_code == 200
        assert Client().get("/statefunslow-batches").status_code == 404


@needs_plugins
def test_statefun_urls_name_the_plugins_endpoints() -> None:
    with override_settings(ROOT_URLCONF="tests.project.urls_flat"):
        assert reverse("statefun-slow-batches") == "/statefun/slow-batches"


@needs_plugins
@pytest.mark.parametrize("urlconf", URLCONFS)
def test_the_endpoints_setting_is_read_on_each_request(urlconf: str) -> None:
    statefun = {"FUNCTIONS": "tests.functions.functions", "ENDPOINTS": False}
    with override_settings(ROOT_URLCONF=urlconf):
        with override_settings(STATEFUN=statefun):
            assert Client().get("/statefun/slow-batches").status_code == 404
        assert Client().get("/statefun/slow-batches").status_code == 200


def test_the_plugins_endpoints_are_those_of_the_current_handler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The handler built again when the setting changes, here without the example plugin."""
    monkeypatch.setenv("STATEFUN_DISABLED_PLUGINS", "slow-batches")
    with override_settings(STATEFUN={"FUNCTIONS": "tests.functions.functions"}):
        assert Client().get("/statefun/slow-batches").status_code == 404


def test_entry_point_names_the_integration() -> None:
    entry_points = metadata.distribution("statefun-django").entry_points
    assert [(ep.group, ep.name, ep.value) for ep in entry_points] == [
        ("statefun", "django", "statefun_django.plugin")
    ]
    assert make_plugin_manager().has_plugin("django")


def test_import_without_django_says_what_to_install() -> None:
    check_import_guard("statefun_django", missing="django", distribution="statefun-django")
