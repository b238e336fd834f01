"""The official SDK's side of the differential test: a process in its own virtual environment.

Reads JSON lines from stdin, ``{"requests": [base64, ...]}``, answers each with one JSON line,
``{"replies": [...]}``: per request ``{"reply": base64}``, or ``{"failed": "<error class>"}``
when ``handle_async`` raised (``handle_sync`` is ``asyncio.run`` of it in this SDK). Imports
nothing from the repository but ``program.py``, found beside this file.
"""

import asyncio
import base64
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import statefun
from program import build
from statefun.request_reply_pb2 import Address


def main() -> None:
    handler = statefun.RequestReplyHandler(build(statefun, Address))
    loop = asyncio.new_event_loop()
    versions = {"statefun": "3.3.0", "protobuf": __import__("google.protobuf").protobuf.__version__}
    print(json.dumps({"ready": versions}), flush=True)
    for line in sys.stdin:
        replies = []
        for request in json.loads(line)["requests"]:
            try:
                reply = loop.run_until_complete(handler.handle_async(base64.b64decode(request)))
            except Exception as error:
                replies.append({"failed": type(error).__name__})
            else:
                replies.append({"reply": base64.b64encode(reply).decode()})
        print(json.dumps({"replies": replies}), flush=True)


if __name__ == "__main__":
    main()
