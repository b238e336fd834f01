"""Each integration's documented way in, as user code writes it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Optional

import flask
import pydantic
import statefun_aiohttp
import statefun_flask
import statefun_msgpack
import statefun_opentelemetry
import statefun_prometheus
import statefun_pydantic
import statefun_tornado
import tornado.routing
import tornado.web
from aiohttp import web
from django.urls import URLPattern, include, path
from opentelemetry.trace import NoOpTracerProvider
from prometheus_client import CollectorRegistry
from statefun_django.middleware import statefun_middleware
from statefun_django.urls import statefun_urls
from statefun_django.views import AsyncStatefunView, StatefunView
from statefun_flask import Statefun, StatefunState, make_blueprint
from typing_extensions import assert_type

from statefun_core import (
    Context,
    Message,
    RequestReplyHandler,
    StatefulFunctions,
    Type,
    ValueSpec,
    make_plugin_manager,
    message_builder,
)
from statefun_core.asgi import StatefunASGI
from statefun_core.asgi import mount as asgi_mount
from statefun_core.aws_lambda import LambdaHandler, ReplyTooLargeError
from statefun_core.plugins import Endpoint, EndpointResponse
from statefun_core.wsgi import StatefunWSGI
from statefun_core.wsgi import mount as wsgi_mount

functions = StatefulFunctions()


@functions.bind("com.example.fns/greeter")
def greet(context: Context, message: Message) -> None:
    context.send(message_builder("com.example.fns/inbox", "ann", str_value="hi"))


handler = RequestReplyHandler(functions)
plugins = make_plugin_manager()
pool = ThreadPoolExecutor()

# a misspelt name is an error, as it is at run time: the __getattr__ that imports a package's
# names on first use is hidden from type checkers (an unused ignore fails both)
misspelt: object = statefun_aiohttp.create_ap  # type: ignore[attr-defined]
misspelt = statefun_flask.make_blueprnt  # type: ignore[attr-defined]
misspelt = statefun_tornado.make_route  # type: ignore[attr-defined]

# --- aiohttp: on an application, or as a sub-application --------------------------------------
app = web.Application(client_max_size=32 * 1024 * 1024)
assert_type(statefun_aiohttp.setup(app, functions), RequestReplyHandler)
assert_type(
    statefun_aiohttp.setup(app, handler, path="/other", endpoints=False), RequestReplyHandler
)
sub = statefun_aiohttp.create_app(functions, client_max_size=1024, executor=pool, plugins=plugins)
assert_type(sub, web.Application)
app.add_subapp("/statefun/", sub)
assert_type(app[statefun_aiohttp.HANDLER_KEY], RequestReplyHandler)


async def my_view(request: web.Request) -> web.Response:
    maybe = await statefun_aiohttp.expect_continue(request)
    assert_type(maybe, Optional[web.Response])
    return await statefun_aiohttp.handle_request(request)


app.add_routes([web.post("/mine", my_view)])
for endpoint in handler.endpoints:
    app.router.add_get(endpoint.path, statefun_aiohttp.endpoint_view(endpoint))

# --- Flask: the extension, or a blueprint -------------------------------------------------------
flask_app = flask.Flask(__name__)
extension = Statefun(flask_app, functions)
assert_type(extension.handler, RequestReplyHandler)
later = Statefun()
later.init_app(flask.Flask("other"))
Statefun(flask.Flask("dotted"), "proj.fns:functions")
state = flask_app.extensions["statefun"]
if isinstance(state, StatefunState):
    assert_type(state.handler, RequestReplyHandler)
blueprint_app = flask.Flask("blueprint")
blueprint = make_blueprint(functions, url_prefix="/statefun")
assert_type(blueprint, flask.Blueprint)
blueprint_app.register_blueprint(blueprint)
statefun_flask.route_endpoints(blueprint_app, handler.endpoints)
assert_type(statefun_flask.endpoint_view(handler.endpoints[0])(), flask.Response)

# --- Django: urls, views, middleware ------------------------------------------------------------
urlpatterns: list[Any] = [
    *statefun_urls("statefun"),
    path("fns/", include("statefun_django.urls")),
    path("sync", StatefunView.as_view()),
    path("async", AsyncStatefunView.as_view()),
]
assert_type(statefun_urls(), list[URLPattern])
MIDDLEWARE = ["statefun_django.middleware.statefun_middleware"]
middleware_factory = statefun_middleware

# --- Tornado: routes, the application, the handler ----------------------------------------------
tornado_app = tornado.web.Application(
    [*statefun_tornado.make_routes(functions, "/statefun", max_body_size=8 << 20)]
)
routes = statefun_tornado.make_routes(handler)
assert_type(routes, list[tornado.routing.URLSpec])
assert_type(statefun_tornado.make_app(functions), tornado.web.Application)
own_rules = tornado.web.Application(
    [(r"/statefun", statefun_tornado.StatefunHandler, {"handler": handler, "max_body_size": 1})]
)
settings_app = tornado.web.Application(
    [(r"/statefun", statefun_tornado.StatefunHandler)],
    statefun_handler=handler,
    statefun_max_body_size=8 << 20,
)
endpoint_rule = (r"/metrics", statefun_tornado.EndpointHandler, {"endpoints": handler.endpoints})

# --- plain ASGI and WSGI applications, mounted ----------------------------------------------------
asgi = StatefunASGI(functions, executor=pool, plugins=plugins, endpoints=False)
assert_type(asgi.handler, RequestReplyHandler)


async def other_asgi(scope: Any, receive: Any, send: Any) -> None:
    pass


mounted_asgi = asgi_mount(other_asgi, "/statefun", asgi)


async def run_asgi(scope: dict[str, Any]) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: Mapping[str, Any]) -> None:
        pass

    await asgi(scope, receive, send)
    await mounted_asgi(scope, receive, send)


wsgi = StatefunWSGI(handler)
assert_type(wsgi.handler, RequestReplyHandler)


def other_wsgi(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    return [b""]


mounted_wsgi = wsgi_mount(other_wsgi, "/statefun", wsgi)


def run_wsgi(environ: dict[str, Any]) -> bytes:
    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        pass

    return b"".join(mounted_wsgi(environ, start_response))


# --- AWS Lambda -------------------------------------------------------------------------------
lambda_handler = LambdaHandler(functions)


def entry(event: dict[str, Any], context: object) -> dict[str, Any]:
    response = lambda_handler(event, context)
    assert_type(response, dict[str, Any])
    return response


too_large: type[Exception] = ReplyTooLargeError

# --- Prometheus, OpenTelemetry --------------------------------------------------------------
registry = CollectorRegistry()
prometheus = statefun_prometheus.PrometheusPlugin(registry, metrics_path="/metrics")
assert_type(statefun_prometheus.metrics_response(registry), tuple[bytes, str])
assert_type(statefun_prometheus.metrics_endpoint({"Accept": "text/plain"}), EndpointResponse)
otel = statefun_opentelemetry.OpenTelemetryPlugin(tracer_provider=NoOpTracerProvider())
scratch_key: str = statefun_opentelemetry.SCRATCH_KEY
observed = RequestReplyHandler(functions, plugins=make_plugin_manager([prometheus, otel]))
metrics: list[Endpoint] = list(observed.endpoints)


# --- pydantic and msgpack types ------------------------------------------------------------
class Order(pydantic.BaseModel):
    id: str
    cents: int


order_type = statefun_pydantic.pydantic_type(Order, "com.example/Order")
assert_type(order_type, Type[Order])
assert_type(statefun_pydantic.default_typename(Order), str)
typename_attribute: str = statefun_pydantic.TYPENAME_ATTRIBUTE
invalid: type[ValueError] = statefun_pydantic.ModelValidationError

scores = statefun_msgpack.msgpack_type("game/Scores")
assert_type(scores, Type[Any])


@statefun_msgpack.msgpack_dataclass("game/Point")
@dataclass
class Point:
    x: int
    y: int


assert_type(Point(1, 2), Point)  # the decorator keeps the class
point_type = statefun_msgpack.msgpack_type("game/Point", Point)
assert_type(point_type, Type[Point])
mark: str = statefun_msgpack.MARK
decode_error: type[ValueError] = statefun_msgpack.MsgpackDecodeError


@functions.bind(
    "com.example.fns/typed",
    specs=[ValueSpec("order", Order), ValueSpec("point", Point), ValueSpec("scores", scores)],
)
def typed(context: Context, message: Message) -> None:
    order = message.as_type(Order)
    assert_type(order, Optional[Order])
    point = message.as_type(Point)
    assert_type(point, Optional[Point])
    if order is not None:
        context.storage.order = order
        context.send(message_builder("com.example.fns/typed", order.id, value=order))
    context.send(message_builder("com.example.fns/typed", "p", value=Point(1, 2)))


# each package's __all__ a literal, which a type checker reads as it reads the names
integration_names: list[str] = [
    *statefun_aiohttp.__all__,
    *statefun_flask.__all__,
    *statefun_tornado.__all__,
]
