"""The benchmark's function server: the same code on the official SDK and on ours.

``python server.py SDK PORT TOPIC``: SDK is ``statefun`` (apache-flink-statefun 3.3.0, as pip
installs it) or ``statefun_core``; only the import differs, as the migration guide promises.
"""

from __future__ import annotations

import importlib
import sys

from aiohttp import web

sdk = importlib.import_module(sys.argv[1])
TOPIC = sys.argv[3]

functions = sdk.StatefulFunctions()


@functions.bind(typename="bench.fns/counter", specs=[sdk.ValueSpec(name="count", type=sdk.IntType)])
def counter(context, message):  # type: ignore[no-untyped-def]
    count = (context.storage.count or 0) + 1
    context.storage.count = count
    context.send_egress(
        sdk.kafka_egress_message(
            typename="bench/out", topic=TOPIC, key=context.address.id, value=str(count)
        )
    )


handler = sdk.RequestReplyHandler(functions)


async def statefun(request: web.Request) -> web.Response:
    reply = await handler.handle_async(await request.read())
    return web.Response(body=reply, content_type="application/octet-stream")


app = web.Application()
app.router.add_post("/statefun", statefun)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[2]), access_log=None, print=None)
