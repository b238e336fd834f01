"""A plugin as its author writes one: each hook of statefun_core.plugins.hookspecs, in a module
and in a class, registered with make_plugin_manager; a type plugin."""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Optional

from typing_extensions import assert_type

from statefun_core import (
    DeadLetterRecord,
    RequestReplyHandler,
    StatefulFunctions,
    Type,
    hookimpl,
    make_plugin_manager,
    simple_type,
)
from statefun_core.plugins import (
    BatchEvent,
    Endpoint,
    EndpointResponse,
    HealthEndpoints,
    InvocationEvent,
    InvocationLogContext,
    InvocationLogFilter,
    Outcome,
    add_invocation_context,
    allowed_methods,
    current_invocation,
    find_endpoint,
    header,
)
from statefun_core.plugins import hookimpl as plugins_hookimpl
from statefun_core.plugins.logcontext import Invocation
from statefun_core.registry import TypeRegistry

DECIMAL = simple_type("example.types/decimal", str, lambda data: Decimal(data.decode("ascii")))


class Money(abc.ABC):  # registered by this abstract base class, for each of its subclasses
    @abc.abstractmethod
    def cents(self) -> int: ...


class Euros(Money):
    def cents(self) -> int:
        return 100


MONEY: Type[Money] = simple_type("example.types/money", lambda m: str(m.cents()), lambda _: Euros())


class Timing:
    @hookimpl
    def statefun_register_types(self, registry: TypeRegistry) -> None:
        registry.register(Decimal, DECIMAL, source="timing")
        registry.register(Money, MONEY, source="timing")
        registry.add_factory(lambda cls: DECIMAL if cls is Decimal else None, source="timing")

    @hookimpl
    def statefun_type_for_class(self, cls: type) -> Optional[Type[Any]]:
        return DECIMAL if issubclass(cls, Decimal) else None

    @hookimpl
    def statefun_batch_started(self, batch: BatchEvent) -> None:
        batch.scratch["timing"] = time.perf_counter()
        batch.reply_headers["X-Batch"] = batch.function_type
        assert_type(batch.headers, Mapping[str, str])

    @hookimpl
    def statefun_invocation_started(self, invocation: InvocationEvent) -> None:
        assert_type(invocation.index, int)
        assert_type(invocation.batch, BatchEvent)

    @hookimpl
    def statefun_invocation_finished(
        self, invocation: InvocationEvent, error: Optional[BaseException]
    ) -> None:
        pass

    @hookimpl
    def statefun_invocation_dead_lettered(
        self, invocation: InvocationEvent, error: BaseException, record: DeadLetterRecord
    ) -> None:
        assert_type(record.attempts, int)

    @hookimpl
    def statefun_batch_finished(self, batch: BatchEvent) -> None:
        outcome: Optional[Outcome] = batch.outcome
        assert_type(batch.duration, float)
        print(outcome)

    @hookimpl
    def statefun_batch_failed(self, batch: BatchEvent, error: BaseException) -> None:
        pass

    @hookimpl
    def statefun_request_failed(
        self, error: BaseException, batch: Optional[BatchEvent], headers: Mapping[str, str]
    ) -> None:
        assert_type(header(headers, "X-Request-Id"), Optional[str])

    @hookimpl
    def statefun_endpoints(self, handler: RequestReplyHandler) -> Sequence[Endpoint]:
        def report(headers: Mapping[str, str]) -> EndpointResponse:
            return EndpointResponse(200, {"Content-Type": "text/plain"}, b"ok")

        return [Endpoint("GET", "/timing", report)]


@plugins_hookimpl(tryfirst=True)
def statefun_batch_started(batch: BatchEvent) -> None:
    pass


plugins = make_plugin_manager([Timing()], load_entrypoints=False, blocked=["prometheus"])
assert_type(plugins.register(Timing(), name="again"), Optional[str])
handler = RequestReplyHandler(StatefulFunctions(), plugins=plugins)
found = find_endpoint(handler.endpoints, "GET", "/timing")
assert_type(found, Optional[Endpoint])
assert_type(allowed_methods(handler.endpoints, "/timing"), str)
if found is not None:
    assert_type(found.respond({}), EndpointResponse)
    status, response_headers, body = found.respond({})
    assert_type(status, int)
health = HealthEndpoints("/healthz", show_functions=True)
make_plugin_manager([health, InvocationLogContext()])
logging.getLogger().addFilter(InvocationLogFilter())
event_dict = add_invocation_context(None, "info", {"event": "hello"})
assert_type(current_invocation.get(), Optional[Invocation])
invocation = current_invocation.get()
if invocation is not None:
    assert_type(invocation.trace_id, Optional[str])
