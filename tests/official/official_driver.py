"""Run in the official SDK's virtualenv: answer each request with ``apache-flink-statefun``.

Reads ``{"requests": {name: hex}}`` from stdin and prints ``{"replies": {name: outcome},
"simple_type": {...}, "value_spec": [...]}``, where an outcome is ``["reply", hex]`` or
``["error", class, text]``.
"""

from __future__ import annotations

import json
import sys

import scenarios
import statefun


def main() -> None:
    requests = json.load(sys.stdin)["requests"]
    handler = statefun.RequestReplyHandler(scenarios.bind(statefun))
    replies = {}
    for name, request in requests.items():
        try:
            replies[name] = ["reply", handler.handle_sync(bytes.fromhex(request)).hex()]
        except Exception as error:
            replies[name] = ["error", type(error).__name__, str(error)]
    outcomes = {
        "replies": replies,
        "simple_type": scenarios.simple_type_outcomes(statefun),
        "value_spec": scenarios.value_spec_of_a_plain_class(statefun),
    }
    json.dump(outcomes, sys.stdout)


if __name__ == "__main__":
    main()
