"""statefun-local as its README runs it: a module, the runtime, its web application."""

from __future__ import annotations

import tempfile
from typing import Any

import statefun_aiohttp
from aiohttp import web
from statefun_local import (
    DeadLetterPolicy,
    Egress,
    Endpoint,
    Failure,
    Ingress,
    LocalRuntime,
    Module,
    ModuleError,
    UnknownFunctionError,
    UnknownIngressError,
    load_module,
    make_app,
    make_value,
    parse_module,
)
from typing_extensions import assert_type

from statefun_core import StatefulFunctions
from statefun_core.engine import Address

functions = StatefulFunctions()
MODULE = """
kind: io.statefun.endpoints.v2/http
spec:
  functions: com.example.fns/*
  urlPathTemplate: http://127.0.0.1:8000/statefun
"""


async def main() -> None:
    app = web.Application(client_max_size=32 * 1024 * 1024)
    statefun_aiohttp.setup(app, functions)
    module = parse_module(MODULE)
    assert_type(module, Module)
    endpoints: list[Endpoint] = module.endpoints
    ingresses: dict[str, Ingress] = module.ingresses
    egresses: dict[str, Egress] = module.egresses
    print(endpoints, ingresses, egresses)
    with tempfile.TemporaryDirectory() as folder:
        async with LocalRuntime(module, f"{folder}/app.db", offline=True) as runtime:
            assert_type(runtime, LocalRuntime)
            ann = Address("com.example.fns/greeter", "Ann")
            await runtime.send(ann, make_value("string", "Ann"))
            await runtime.wait_until_idle()
            inspected = runtime.inspect(ann)
            assert_type(inspected, dict[str, Any])
            records = runtime.egress_records()
            assert_type(records, list[dict[str, Any]])
            runtime_app = make_app(runtime, allowed_hosts=["example.com"])
            assert_type(runtime_app, web.Application)


errors: list[type[Exception]] = [ModuleError, UnknownFunctionError, UnknownIngressError]
policy: type[DeadLetterPolicy] = DeadLetterPolicy
failure: type[Failure] = Failure
loaded = load_module("module.yaml")
