from __future__ import annotations

import asyncio
from typing import Any, Callable

import pytest

from statefun_core import RequestReplyHandler, StatefulFunctions, make_plugin_manager


def _sync(handler: RequestReplyHandler) -> Callable[[bytes], bytes]:
    return handler.handle_sync


def _async(handler: RequestReplyHandler) -> Callable[[bytes], bytes]:
    def call(data: bytes) -> bytes:
        return asyncio.run(handler.handle_async(data))

    return call


@pytest.fixture(params=["handle_sync", "handle_async"])
def serve(request: Any) -> Callable[[StatefulFunctions], Callable[[bytes], bytes]]:
    """``serve(functions)`` gives a ``bytes -> bytes`` callable through one of the two drivers."""
    driver = _sync if request.param == "handle_sync" else _async

    def make(functions: StatefulFunctions) -> Callable[[bytes], bytes]:
        handler = RequestReplyHandler(
            functions, plugins=make_plugin_manager(load_entrypoints=False)
        )
        return driver(handler)

    return make
