"""statefun_flask through Flask's test client, with real protobuf bytes."""

from __future__ import annotations

import io
import logging
import re
from decimal import Decimal
from importlib import metadata
from typing import Any, Optional, Union

import pytest
from flask import Blueprint, Flask, Response, jsonify, request
from flask.testing import FlaskClient
from statefun_flask import Statefun, StatefunState, make_blueprint, route_endpoints
from statefun_flask.blueprint import RequestHeaders
from werkzeug.exceptions import HTTPException

from statefun_core import (
    Limits,
    RequestReplyHandler,
    StatefulFunctions,
    ValueSpec,
    make_plugin_manager,
)
from statefun_core.engine import StateSpec
from statefun_core.errors import (
    MethodNotAllowedError,
    PluginError,
    RequestTooLargeError,
    UnknownTypeError,
)
from statefun_core.http import error_response
from statefun_core.testing import wire
from statefun_core.testing.endpoint import (
    FAILING,
    GREETER,
    INBOX,
    NEW,
    FailureRecorder,
    HeaderRecorder,
    PingEndpoints,
    greetings,
    make_functions,
)
from statefun_core.testing.packaging import check_framework_imported_on_use, check_import_guard

LIMIT = 64 * 1024

# What setup raises for a state whose type only a disabled plugin resolves.
DISABLED_TYPE = (
    r"function 'bank/account', state 'balance': no StateFun type is known for decimal\.Decimal"
    r".*disabled plugins: slow-batches \(STATEFUN_DISABLED_PLUGINS\)"
)


@pytest.fixture
def recorder() -> HeaderRecorder:
    return HeaderRecorder("traceparent", "content-type")


@pytest.fixture
def failures() -> FailureRecorder:
    return FailureRecorder()


@pytest.fixture
def app(recorder: HeaderRecorder, failures: FailureRecorder) -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = LIMIT
    plugins = make_plugin_manager([recorder, failures], load_entrypoints=False)
    Statefun(app, RequestReplyHandler(make_functions(), plugins=plugins))
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def post(client: FlaskClient, body: bytes, path: str = "/statefun", **kwargs: object) -> object:
    return client.post(path, data=body, content_type="application/octet-stream", **kwargs)


def test_greeter_reply(client: FlaskClient) -> None:
    response = post(client, wire.to_function(GREETER, "Ann", ["Ann"], {"seen_count": 2}))
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert greetings(response.data) == (3, [(INBOX, "Ann", "Hello Ann for the 3th time!")])


def test_state_discovery(client: FlaskClient) -> None:
    response = post(client, wire.to_function(GREETER, "Ann", ["Ann"]))
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert wire.missing_states(response.data) == [StateSpec("seen_count", "io.statefun.types/int")]


def test_batch(client: FlaskClient) -> None:
    response = post(client, wire.to_function(GREETER, "Bo", ["Bo", "Cy", "Bo"], NEW))
    seen, sent = greetings(response.data)
    assert seen == 3
    assert [greeting for _, _, greeting in sent] == [
        "Hello Bo for the 1th time!",
        "Hello Cy for the 2th time!",
        "Hello Bo for the 3th time!",
    ]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"\xff\xff\xff", 400),  # not protobuf
        (b"", 400),  # a ToFunction without an invocation batch
        (wire.to_function("com.example.fns/nobody", "x", ["x"], NEW), 404),
        (wire.to_function(FAILING, "x", ["x"]), 500),
    ],
    ids=["malformed", "empty", "unknown-function", "function-fails"],
)
def test_error_statuses(client: FlaskClient, body: bytes, status: int) -> None:
    response = post(client, body)
    assert response.status_code == status
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    text = response.get_data(as_text=True)
    assert 0 < len(text) < 200  # one short line, no traceback
    assert "\n" not in text
    assert "Traceback" not in text
    assert "on purpose" not in text


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "OPTIONS", "HEAD", "TRACE", "FOO"])
def test_only_post_is_allowed(client: FlaskClient, method: str) -> None:
    response = client.open("/statefun", method=method)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"


def test_body_over_max_content_length_is_413(client: FlaskClient) -> None:
    body = wire.to_function(GREETER, "Ann", ["x" * LIMIT], NEW)
    response = post(client, body)
    assert response.status_code == 413
    expected = error_response(RequestTooLargeError(len(body), LIMIT, "MAX_CONTENT_LENGTH"))[1]
    assert response.get_data(as_text=True) == expected


def test_framework_rejections_reach_the_hooks(
    client: FlaskClient, failures: FailureRecorder
) -> None:
    assert client.get("/statefun", headers={"X-Request-Id": "r-1"}).status_code == 405
    response = post(client, b"\x00" * (LIMIT + 1), headers={"X-Request-Id": "r-2"})
    assert response.status_code == 413
    assert failures.failures == [
        (MethodNotAllowedError, 405, "r-1"),
        (RequestTooLargeError, 413, "r-2"),
    ]
    assert failures.batches == [None, None]  # rejected before a batch existed


def json_errors(app: Flask, errors: Union[int, type[HTTPException]]) -> None:
    """The application's own error handler: these errors as JSON."""

    @app.errorhandler(errors)
    def as_json(error: HTTPException) -> tuple[Response, int]:
        return jsonify(error=error.name), error.code or 500


@pytest.mark.parametrize("errors", [HTTPException, 405], ids=["HTTPException", "405"])
def test_the_applications_own_405_handler_stays_in_force(
    errors: Union[int, type[HTTPException]],
) -> None:
    app = Flask(__name__)
    json_errors(app, errors)

    @app.post("/api/x")
    def x() -> str:
        return "x"

    Statefun(app, make_functions())
    response = app.test_client().get("/api/x")
    assert response.status_code == 405
    assert response.get_json() == {"error": "Method Not Allowed"}


def test_the_applications_routes_at_the_endpoints_path_answer_their_methods() -> None:
    """Added after the extension, an application's GET at the same path is still served."""
    app = Flask(__name__)
    app.config["STATEFUN_URL_PREFIX"] = "/"
    Statefun(app, make_functions())

    @app.get("/")
    def index() -> str:
        return "index"

    client = app.test_client()
    assert (client.get("/").status_code, client.get("/").text) == (200, "index")
    assert client.put("/").headers["Allow"] == "POST"  # the endpoint's own 405
    assert all(rule.methods for rule in app.url_map.iter_rules())  # tools read them


@pytest.mark.parametrize("errors", [HTTPException, 405], ids=["HTTPException", "405"])
@pytest.mark.parametrize("method", ["GET", "PUT", "TRACE"])
def test_the_endpoints_405_is_its_own_beside_the_applications_handler(
    failures: FailureRecorder, method: str, errors: Union[int, type[HTTPException]]
) -> None:
    app = Flask(__name__)
    json_errors(app, errors)  # registered before the extension, which keeps it for the rest
    plugins = make_plugin_manager([failures], load_entrypoints=False)
    Statefun(app, RequestReplyHandler(make_functions(), plugins=plugins))
    json_errors(app, HTTPException)  # a base class's, registered after: the endpoint's wins
    response = app.test_client().open("/statefun", method=method, headers={"X-Request-Id": "r"})
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert failures.failures == [(MethodNotAllowedError, 405, "r")]


def test_two_blueprints_each_answer_their_own_405_through_the_hook() -> None:
    app = Flask(__name__)
    recorders = {"a": FailureRecorder(), "b": FailureRecorder()}
    for name, recorder in recorders.items():
        plugins = make_plugin_manager([recorder], load_entrypoints=False)
        handler = RequestReplyHandler(make_functions(), plugins=plugins)
        app.register_blueprint(make_blueprint(handler, url_prefix=f"/{name}", name=name))
    client = app.test_client()
    for name in recorders:
        response = client.get(f"/{name}", headers={"X-Request-Id": name})
        assert response.status_code == 405
        assert response.headers["Allow"] == "POST"
        assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert recorders["a"].failures == [(MethodNotAllowedError, 405, "a")]
    assert recorders["b"].failures == [(MethodNotAllowedError, 405, "b")]


def ping_handler() -> RequestReplyHandler:
    plugins = make_plugin_manager([PingEndpoints()], load_entrypoints=False)
    return RequestReplyHandler(make_functions(), plugins=plugins)


CLASH = r"endpoint GET /ping is routed on this app already.*route_endpoints for one handler"


def test_a_second_handlers_plugin_endpoints_are_refused_naming_the_clash() -> None:
    """Flask's own error was an AssertionError about overwriting a view function."""
    app = Flask(__name__)
    handlers = {"a": ping_handler(), "b": ping_handler()}
    for name, handler in handlers.items():
        app.register_blueprint(make_blueprint(handler, url_prefix=f"/{name}", name=name))
    route_endpoints(app, handlers["a"].endpoints)
    route_endpoints(app, handlers["a"].endpoints)  # the same endpoints again: already there
    with pytest.raises(ValueError, match=CLASH):
        route_endpoints(app, handlers["b"].endpoints)
    client = app.test_client()
    assert client.get("/ping").data == b"got"
    assert client.put("/ping").headers["Allow"] == "GET, HEAD, POST"
    for name in handlers:
        response = post(client, wire.to_function(GREETER, "Ann", ["Ann"], NEW), path=f"/{name}")
        assert greetings(response.data)[0] == 1


def test_the_extension_after_a_routed_handler_fails_before_changing_the_app() -> None:
    app = Flask(__name__)
    first = ping_handler()
    app.register_blueprint(make_blueprint(first, url_prefix="/first", name="first"))
    route_endpoints(app, first.endpoints)
    with pytest.raises(ValueError, match=f"{CLASH}.*STATEFUN_ENDPOINTS = False"):
        Statefun(app, ping_handler())
    assert "statefun" not in app.blueprints and "statefun" not in app.extensions
    app.config["STATEFUN_ENDPOINTS"] = False  # what the error says
    Statefun(app, ping_handler())
    response = post(app.test_client(), wire.to_function(GREETER, "Ann", ["Ann"], NEW))
    assert greetings(response.data)[0] == 1


def test_a_plugin_endpoint_where_the_app_routes_its_own_view_is_refused() -> None:
    """Werkzeug answers the rule added first: the plugin's endpoint was never answered."""
    app = Flask(__name__)

    @app.get("/ping")
    def own_ping() -> str:
        return "the app's own"

    @app.get("/<path:page>")  # a rule with converters: the plugin's static rule comes first
    def page(page: str) -> str:
        return page

    message = r"the app routes GET /ping to its own view 'own_ping'.*STATEFUN_ENDPOINTS = False"
    with pytest.raises(ValueError, match=message):
        Statefun(app, ping_handler())
    assert "statefun" not in app.blueprints
    app.config["STATEFUN_ENDPOINTS"] = False  # what the error says
    handler = ping_handler()
    Statefun(app, handler)
    route_endpoints(app, [e for e in handler.endpoints if e.path != "/ping"])  # and the rest
    client = app.test_client()
    assert client.get("/ping").data == b"the app's own"
    assert client.post("/pong").data == b"ponged"
    assert client.get("/elsewhere").data == b"elsewhere"


def test_body_declared_over_the_handlers_limit_reaches_the_hooks() -> None:
    failures = FailureRecorder()
    plugins = make_plugin_manager([failures], load_entrypoints=False)
    handler = RequestReplyHandler(make_functions(), plugins=plugins, limits=Limits(request_bytes=8))
    app = Flask(__name__)  # no MAX_CONTENT_LENGTH: the handler's limit bounds the read
    Statefun(app, handler)
    response = post(app.test_client(), b"\x00" * 9, headers={"X-Request-Id": "r-3"})
    assert response.status_code == 413
    assert failures.failures == [(RequestTooLargeError, 413, "r-3")]
    assert failures.batches == [None]


def limited_app(request_bytes: Optional[int], max_content_length: Optional[int] = None) -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = max_content_length
    Statefun(app, RequestReplyHandler(make_functions(), limits=Limits(request_bytes=request_bytes)))
    return app


def post_chunked(app: Flask, body: Union[bytes, io.BytesIO], **environ: object) -> Any:
    """A chunked body as a server hands it over: decoded, its end marked (input_terminated)."""
    stream = body if isinstance(body, io.BytesIO) else io.BytesIO(body)
    return app.test_client().post(
        "/statefun",
        input_stream=stream,
        content_type="application/octet-stream",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True, **environ},
    )


def test_a_declared_length_over_the_handlers_limit_is_413_before_the_body_is_read() -> None:
    """Content-Length 9 over a limit of 8, one byte sent: refused by its length, unread (read,
    the body would be short of its length: a 400)."""
    client = limited_app(8).test_client()
    response = post(client, b"\x00", environ_overrides={"CONTENT_LENGTH": "9"})
    assert response.status_code == 413
    assert "body is 9 bytes, over the limit of 8 bytes (Limits.request_bytes)" in response.text


def test_a_body_within_max_content_length_is_still_bounded_by_the_handlers_limit() -> None:
    response = post(limited_app(8, max_content_length=16).test_client(), b"\x00" * 16)
    assert response.status_code == 413
    assert "body is 16 bytes, over the limit of 8 bytes (Limits.request_bytes)" in response.text


def test_a_chunked_body_is_read_to_max_content_length_and_one_byte_over_at_most() -> None:
    body = wire.to_function(GREETER, "Ann", ["Ann"], NEW)
    app = limited_app(LIMIT, max_content_length=len(body))
    assert greetings(post_chunked(app, body).data)[0] == 1
    stream = io.BytesIO(body + b"\x00" * 100)
    response = post_chunked(app, stream)
    assert response.status_code == 413
    assert f"over the limit of {len(body)} bytes (MAX_CONTENT_LENGTH)" in response.text
    assert len(stream.read()) == 99  # read to one byte over the limit, the rest left unread


def test_a_chunked_body_is_read_whole_when_nothing_limits_it() -> None:
    body = wire.to_function(GREETER, "Ann", ["Ann"], NEW)
    assert greetings(post_chunked(limited_app(None), body).data)[0] == 1


def test_a_chunked_bodys_content_length_is_ignored() -> None:
    """Transfer-Encoding wins over a Content-Length sent with it (RFC 9112, 6.3)."""
    body = wire.to_function(GREETER, "Ann", ["Ann"], NEW)
    response = post_chunked(limited_app(LIMIT), body, CONTENT_LENGTH="5")
    assert greetings(response.data)[0] == 1


def test_a_chunked_body_the_server_does_not_end_is_400_saying_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The Flask test client (as wsgiref) passes a chunked body without
    ``wsgi.input_terminated``: Werkzeug reads it as empty, which the handler refused as a
    request with no invocation batch, not saying what to change."""
    body = wire.to_function(GREETER, "Ann", ["Ann"], NEW)
    client = limited_app(LIMIT).test_client()
    with caplog.at_level(logging.WARNING, logger="statefun_core"):
        response = client.post(
            "/statefun",
            input_stream=io.BytesIO(body),
            content_type="application/octet-stream",
            headers={"Transfer-Encoding": "chunked"},
        )
    assert response.status_code == 400
    assert "without marking its end (wsgi.input_terminated)" in caplog.text, caplog.text
    assert "send its Content-Length" in caplog.text


def test_the_hooks_see_the_request_headers_as_a_mapping() -> None:
    app = Flask(__name__)
    with app.test_request_context(headers={"Traceparent": "t", "X-Other": "o"}):
        headers = RequestHeaders(request)
        assert headers["traceparent"] == "t"
        assert len(headers) == len(request.headers) == len(list(headers))
        assert bool(headers) is True
        assert dict(headers)["X-Other"] == "o"


def test_request_headers_reach_the_plugins(client: FlaskClient, recorder: HeaderRecorder) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    post(
        client,
        wire.to_function(GREETER, "Ann", ["Ann"], NEW),
        headers={"Traceparent": traceparent},
    )
    assert recorder.headers[-1]["traceparent"] == traceparent


# --- the extension ------------------------------------------------------------------------


def test_extension_keeps_its_state_in_app_extensions(app: Flask) -> None:
    state = app.extensions["statefun"]
    assert isinstance(state, StatefunState)
    assert isinstance(state.handler, RequestReplyHandler)
    with app.app_context():
        assert Statefun().handler is state.handler


def test_init_app_serves_several_apps_without_keeping_one() -> None:
    statefun = Statefun(functions=make_functions())
    first, second = Flask("first"), Flask("second")
    second.config["STATEFUN_URL_PREFIX"] = "/fns"
    statefun.init_app(first)
    statefun.init_app(second)
    assert not hasattr(statefun, "app")
    assert first.extensions["statefun"].handler is not second.extensions["statefun"].handler
    body = wire.to_function(GREETER, "Ann", ["Ann"], {"seen_count": 0})
    assert post(first.test_client(), body).status_code == 200
    assert post(second.test_client(), body, path="/fns").status_code == 200
    assert post(second.test_client(), body).status_code == 404


def test_config_defaults_are_set_and_not_overridden() -> None:
    app = Flask(__name__)
    app.config["STATEFUN_URL_PREFIX"] = "/custom"
    Statefun(app, make_functions())
    assert app.config["STATEFUN_URL_PREFIX"] == "/custom"
    assert app.config["STATEFUN_ENDPOINTS"] is True
    assert app.url_map.bind("localhost").match("/custom", method="POST")[0] == "statefun.endpoint"


@pytest.mark.parametrize("prefix", ["/fns", "/fns/"])
@pytest.mark.parametrize("path", ["/fns", "/fns/"])
def test_the_endpoint_is_served_with_and_without_the_trailing_slash(prefix: str, path: str) -> None:
    """module.yaml names the endpoint without the slash, and the runtime follows no redirect:
    a prefix ending in "/" must not answer a POST to "/fns" with Werkzeug's 308."""
    app = Flask(__name__)
    app.config["STATEFUN_URL_PREFIX"] = prefix
    Statefun(app, make_functions())
    client = app.test_client()
    response = post(client, wire.to_function(GREETER, "Ann", ["Ann"], NEW), path=path)
    assert response.status_code == 200
    assert greetings(response.data)[0] == 1
    assert client.get(path).headers["Allow"] == "POST"  # the endpoint's own 405


@pytest.mark.parametrize("path", ["tests.functions:functions", "tests.functions.functions"])
def test_functions_by_dotted_path(path: str) -> None:
    app = Flask(__name__)
    app.config["STATEFUN_FUNCTIONS"] = path
    Statefun(app)
    response = post(app.test_client(), wire.to_function(GREETER, "Ann", ["Ann"], {"seen_count": 0}))
    assert greetings(response.data)[0] == 1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "tests.functions",
            "STATEFUN_FUNCTIONS: 'tests.functions' is a module: name the StatefulFunctions "
            "in it, such as 'tests.functions:functions'",
        ),
        (
            ["tests.functions:functions"],  # statefun-django takes a list; this one does not
            "STATEFUN_FUNCTIONS: expected a StatefulFunctions or a RequestReplyHandler, got list",
        ),
    ],
)
def test_functions_that_are_not_served_name_the_key(value: object, message: str) -> None:
    app = Flask(__name__)
    app.config["STATEFUN_FUNCTIONS"] = value
    with pytest.raises(TypeError, match=re.escape(message)):
        Statefun(app)


def test_a_second_statefun_on_one_app_says_what_to_do_instead() -> None:
    """Flask's own error says "Use 'name=' to provide a unique name", which the extension
    does not take."""
    app = Flask(__name__)
    statefun = Statefun(app, make_functions())
    with pytest.raises(ValueError, match=r"make_blueprint\(functions, url_prefix=..., name=...\)"):
        statefun.init_app(app)
    other = Flask(__name__)
    other.register_blueprint(Blueprint("statefun", __name__, url_prefix="/mine"))
    with pytest.raises(ValueError, match="a blueprint named 'statefun' already"):
        Statefun(other, make_functions())


def test_no_functions_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="STATEFUN_FUNCTIONS"):
        Statefun(Flask(__name__))


def test_blueprint_alone() -> None:
    app = Flask(__name__)
    app.register_blueprint(make_blueprint(make_functions(), url_prefix="/fns", name="fns"))
    response = post(
        app.test_client(),
        wire.to_function(GREETER, "Ann", ["Ann"], NEW),
        path="/fns",
    )
    assert response.status_code == 200
    assert greetings(response.data)[0] == 1
    assert "statefun" not in app.extensions


@pytest.mark.parametrize("how", ["extension", "blueprint"])
def test_csrf_protect_set_up_first_exempts_the_endpoint(how: str) -> None:
    """The runtime's POST carries no CSRF token: Flask-WTF would answer it 400."""
    csrf_protect = pytest.importorskip("flask_wtf.csrf").CSRFProtect
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "test"
    csrf = csrf_protect(app)

    @app.post("/form")
    def form() -> str:
        return "form"

    if how == "extension":
        Statefun(app, make_functions())
    else:
        app.register_blueprint(make_blueprint(make_functions()))
    client = app.test_client()
    response = post(client, wire.to_function(GREETER, "Ann", ["Ann"], NEW))
    assert response.status_code == 200
    assert greetings(response.data)[0] == 1
    assert client.put("/statefun").status_code == 405
    assert client.post("/form").status_code == 400  # the application's views stay protected
    assert app.blueprints["statefun"] in csrf._exempt_blueprints


def test_csrf_protect_set_up_later_exempts_the_blueprint_as_documented() -> None:
    csrf_protect = pytest.importorskip("flask_wtf.csrf").CSRFProtect
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "test"
    Statefun(app, make_functions())
    csrf = csrf_protect(app)
    csrf.exempt(app.blueprints["statefun"])  # the README's form
    response = post(app.test_client(), wire.to_function(GREETER, "Ann", ["Ann"], NEW))
    assert response.status_code == 200


@pytest.mark.parametrize("prefix", ["", None])
def test_blueprint_without_a_prefix_serves_the_root(prefix: Optional[str]) -> None:
    app = Flask(__name__)
    app.register_blueprint(make_blueprint(make_functions(), url_prefix=prefix))  # type: ignore[arg-type]
    response = post(app.test_client(), wire.to_function(GREETER, "Ann", ["Ann"], NEW), path="/")
    assert response.status_code == 200


def test_an_empty_url_prefix_serves_the_root_as_it_did() -> None:
    app = Flask(__name__)
    app.config["STATEFUN_URL_PREFIX"] = ""  # as make_blueprint's url_prefix=""
    Statefun(app, make_functions())
    response = post(app.test_client(), wire.to_function(GREETER, "Ann", ["Ann"], NEW), path="/")
    assert response.status_code == 200


def test_blueprint_rejects_what_it_cannot_serve() -> None:
    with pytest.raises(TypeError, match="StatefulFunctions"):
        make_blueprint(object())  # type: ignore[arg-type]


# --- metrics, entry point, import guard ---------------------------------------------------


def test_metrics_when_statefun_prometheus_is_installed() -> None:
    pytest.importorskip("statefun_prometheus")
    app = Flask(__name__)
    Statefun(app, make_functions())
    client = app.test_client()
    post(client, wire.to_function(GREETER, "Ann", ["Ann"], {"seen_count": 0}))
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    assert b"statefun_" in response.data


@pytest.mark.parametrize("how", ["extension", "blueprint"])
def test_endpoints_of_two_methods_at_one_path(how: str) -> None:
    """Each method finds its endpoint, HEAD only a GET one; any other method is a plain 405
    (no automatic OPTIONS), as at the function endpoint."""
    app = Flask(__name__)
    plugins = make_plugin_manager([PingEndpoints()], load_entrypoints=False)
    handler = RequestReplyHandler(make_functions(), plugins=plugins)
    if how == "extension":
        Statefun(app, handler)
    else:
        app.register_blueprint(make_blueprint(handler))
        route_endpoints(app, handler.endpoints)
    client = app.test_client()
    got, posted = client.get("/ping"), client.post("/ping")
    assert (got.status_code, got.data) == (200, b"got")
    assert (posted.status_code, posted.data) == (202, b"posted")
    assert client.head("/ping").status_code == 200
    for method in ("PUT", "OPTIONS", "PROPFIND"):
        refused = client.open("/ping", method=method)
        assert (refused.status_code, refused.headers["Allow"]) == (405, "GET, HEAD, POST")
        assert refused.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert refused.data == b"Method Not Allowed"
    refused = client.head("/pong")
    assert (refused.status_code, refused.headers["Allow"]) == (405, "POST")
    assert client.get("/elsewhere").status_code == 404


def test_endpoints_false_turns_the_plugins_endpoints_off() -> None:
    app = Flask(__name__)
    app.config["STATEFUN_ENDPOINTS"] = False
    Statefun(app, make_functions())
    assert app.test_client().get("/metrics").status_code == 404


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        # read from the environment as a string ("false" would turn the endpoints on)
        ("STATEFUN_ENDPOINTS", "false", "STATEFUN_ENDPOINTS must be True or False, not 'false'"),
        ("STATEFUN_ENDPOINTS", None, "STATEFUN_ENDPOINTS must be True or False, not None"),
        ("STATEFUN_URL_PREFIX", "statefun", "STATEFUN_URL_PREFIX must start with '/'"),
        ("STATEFUN_URL_PREFIX", None, "STATEFUN_URL_PREFIX must start with '/', not None"),
        # Flask's own, which bounds the body: compared with each request's length, a string
        # failed every request (500)
        ("MAX_CONTENT_LENGTH", "65536", "MAX_CONTENT_LENGTH must be an int or None, not '65536'"),
    ],
)
def test_a_misconfigured_key_is_named(key: str, value: object, message: str) -> None:
    app = Flask(__name__)
    app.config[key] = value
    with pytest.raises(ValueError, match=re.escape(message)):
        Statefun(app, make_functions())
    assert "statefun" not in app.extensions


@pytest.mark.parametrize("value", [0, 1])
def test_endpoints_takes_0_and_1_as_flags(value: int) -> None:
    pytest.importorskip("statefun_prometheus")
    app = Flask(__name__)
    app.config["STATEFUN_ENDPOINTS"] = value
    Statefun(app, make_functions())
    assert app.test_client().get("/metrics").status_code == (200 if value else 404)


def test_the_framework_is_imported_on_use_not_by_the_plugin_host() -> None:
    check_framework_imported_on_use(
        "statefun_flask", entry_point="flask", framework="flask", export="Statefun"
    )


def test_entry_point_names_the_integration() -> None:
    entry_points = metadata.distribution("statefun-flask").entry_points
    assert [(ep.group, ep.name, ep.value) for ep in entry_points] == [
        ("statefun", "flask", "statefun_flask.plugin")
    ]
    assert make_plugin_manager().has_plugin("flask")


def test_import_without_flask_says_what_to_install() -> None:
    check_import_guard("statefun_flask", missing="flask", distribution="statefun-flask")


def test_a_state_of_a_disabled_type_plugin_fails_at_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example plugin's Decimal type: resolved when it is on, refused at setup when off."""
    pytest.importorskip("statefun_slow_batches")

    def decimal_functions() -> StatefulFunctions:
        functions = StatefulFunctions()
        functions.register("bank/account", lambda c, m: None, [ValueSpec("balance", type=Decimal)])
        return functions

    Statefun(Flask(__name__), decimal_functions())
    monkeypatch.setenv("STATEFUN_DISABLED_PLUGINS", "slow-batches")
    with pytest.raises(UnknownTypeError, match=DISABLED_TYPE):
        Statefun(Flask(__name__), decimal_functions())
    with pytest.raises(UnknownTypeError, match=DISABLED_TYPE):
        make_blueprint(decimal_functions())


def test_a_plugin_endpoint_at_the_function_path_fails_init_app() -> None:
    app = Flask(__name__)
    app.config["STATEFUN_URL_PREFIX"] = "/ping"
    plugins = make_plugin_manager([PingEndpoints()], load_entrypoints=False)
    handler = RequestReplyHandler(make_functions(), plugins=plugins)
    with pytest.raises(PluginError, match="'PingEndpoints' contributes the endpoint GET /ping"):
        Statefun(app, handler)
