"""``python -m tests.deadletters.server PORT sync|async``: the dead-letter functions behind a
real server, Flask under werkzeug (``handle_sync``) or aiohttp (``handle_async``)."""

import sys

from statefun_core import RequestReplyHandler, make_plugin_manager

from .functions import DEAD_LETTERS, make_functions


def handler() -> RequestReplyHandler:
    plugins = make_plugin_manager(load_entrypoints=False)
    return RequestReplyHandler(make_functions(), plugins=plugins, dead_letters=DEAD_LETTERS)


if __name__ == "__main__":
    port, driver = int(sys.argv[1]), sys.argv[2]
    if driver == "sync":
        from flask import Flask
        from statefun_flask import Statefun

        app = Flask(__name__)
        Statefun(app, handler())
        app.run(host="127.0.0.1", port=port, threaded=True)
    else:
        import statefun_aiohttp
        from aiohttp import web

        application = web.Application()
        statefun_aiohttp.setup(application, handler())
        web.run_app(application, host="127.0.0.1", port=port, print=None)
