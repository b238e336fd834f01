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
