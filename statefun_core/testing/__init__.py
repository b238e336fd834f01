"""Test your functions without a runtime: :class:`Harness` runs them through the real
request-reply handler and the runtime engine, on a clock the test moves.

::

    harness = Harness(functions)
    harness.send("example/greeter", "ann", str_value="Ann").run()
    harness.assert_state("example/greeter", "ann", seen_count=1)

With pytest, the ``statefun_harness`` fixture makes one: ``statefun_harness(functions)``.
To talk to an endpoint directly, :mod:`statefun_core.testing.wire` builds ``ToFunction``
requests and reads ``FromFunction`` replies; to test an HTTP endpoint that serves functions,
:mod:`statefun_core.testing.endpoint` runs its server and brings the standard test functions
and recording plugins; :mod:`statefun_core.testing.aws_lambda` makes the events a Lambda
function gets from each HTTP gateway. See docs/testing.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes

if TYPE_CHECKING:
    from . import aws_lambda, endpoint, packaging, wire
    from .harness import Harness, HarnessError, HarnessFactory
    from .records import (
        EgressOutput,
        KafkaRecord,
        KinesisRecord,
        PendingMessage,
        SentMessage,
        decode_egress,
    )

__all__ = [
    "EgressOutput",
    "Harness",
    "HarnessError",
    "HarnessFactory",
    "KafkaRecord",
    "KinesisRecord",
    "PendingMessage",
    "SentMessage",
    "aws_lambda",
    "decode_egress",
    "endpoint",
    "packaging",
    "wire",
]

# Imported on first use, as the names of statefun_core: the pytest plugin beside this module
# is imported by every pytest run, in projects that never use the harness too.
if not TYPE_CHECKING:  # the type checker reads the imports above, and no name it does not know
    __getattr__, __dir__ = lazy_attributes(
        globals(),
        {
            "harness": ("Harness", "HarnessError", "HarnessFactory"),
            "records": (
                "EgressOutput",
                "KafkaRecord",
                "KinesisRecord",
                "PendingMessage",
                "SentMessage",
                "decode_egress",
            ),
        },
        ("aws_lambda", "endpoint", "harness", "packaging", "records", "wire"),
    )
