"""W3C trace context between a StateFun runtime and its functions: the headers statefun-local
and the test harness send with each batch, and the one a traced function answers with.

A batch request carries:

- ``traceparent`` and ``tracestate`` (W3C Trace Context): where the batch's first message
  with a known origin comes from. Any W3C-aware server instrumentation continues it.
- ``statefun-origins``: where each message of the batch comes from, one entry per invocation
  in order (see :func:`encode_origins`); statefun-opentelemetry links each invocation's span
  to its message's origin.

A reply may carry ``traceresponse`` (W3C Trace Context Level 2): the span of the batch that
handled the request. The runtime keeps it as the origin of every message, delayed message and
egress record of the reply, and sends it with the batches that deliver them, so one trace
follows a message from the ingress through every function to the egress. A reply without it
(no tracing plugin) passes on the origin the batch was sent with.

Nothing here depends on OpenTelemetry: these are strings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Optional

__all__ = [
    "MAX_ORIGINS_LENGTH",
    "ORIGINS",
    "TRACEPARENT",
    "TRACERESPONSE",
    "TRACESTATE",
    "decode_origins",
    "encode_origins",
    "is_traceparent",
    "is_tracestate",
]

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
TRACERESPONSE = "traceresponse"
ORIGINS = "statefun-origins"
#: ``statefun-origins`` stops before this many characters (servers bound header sizes); the
#: invocations past its end have no known origin.
MAX_ORIGINS_LENGTH = 4096

_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")


def is_traceparent(value: str) -> bool:
    """Whether ``value`` has the form of a W3C ``traceparent`` (version, trace id, parent id,
    flags), all-zero ids excepted."""
    return (
        _TRACEPARENT.fullmatch(value) is not None
        and value[3:35] != "0" * 32
        and value[36:52] != "0" * 16
        and value[:2] != "ff"
    )


#: W3C ``tracestate``: list members of printable ASCII, and the white space between them
_TRACESTATE = re.compile(r"[\t\x20-\x7e]*")


def is_tracestate(value: str) -> bool:
    """Whether ``value`` is text a W3C ``tracestate`` may hold: printable ASCII (a control
    character could not even be sent as a header)."""
    return _TRACESTATE.fullmatch(value) is not None


def encode_origins(origins: Sequence[Optional[str]]) -> str:
    """The ``statefun-origins`` value for one ``traceparent`` (or None) per invocation.

    Entries are separated by commas; an empty entry is an invocation of unknown origin; a run
    of ``n`` equal entries is written ``n*entry`` (messages sent by one batch arrive together).
    Trailing unknown entries are left out, and so is every entry that would take the value past
    :data:`MAX_ORIGINS_LENGTH`.
    """
    end = len(origins)
    while end and origins[end - 1] is None:
        end -= 1  # unknown origins at the end say nothing
    parts: list[str] = []
    length = 0
    for origin, count in _runs(origins[:end]):
        part = origin or ""
        if count > 1:
            part = f"{count}*{part}"
        length += len(part) + (1 if parts else 0)
        if length > MAX_ORIGINS_LENGTH:
            break
        parts.append(part)
    return ",".join(parts)


def decode_origins(value: str, invocations: int) -> list[Optional[str]]:
    """The origin of each of ``invocations`` invocations from a ``statefun-origins`` value:
    a ``traceparent``, or None when unknown, not given or malformed."""
    origins: list[Optional[str]] = []
    for part in value.split(","):
        count_text, star, origin = part.strip().rpartition("*")
        count = 1
        if star:
            if not (count_text.isascii() and count_text.isdigit()):  # "²" is a digit too
                break
            # a count longer than the batch's size is the rest of it: int() refuses a string of
            # over 4300 digits (a ValueError, which would cost the batch its span)
            digits = count_text.lstrip("0") or "0"
            count = invocations if len(digits) > len(str(invocations)) else int(digits)
        count = min(count, invocations - len(origins))
        origins.extend([origin if is_traceparent(origin) else None] * count)
        if len(origins) >= invocations:
            break
    origins.extend([None] * (invocations - len(origins)))
    return origins


def _runs(items: Iterable[Optional[str]]) -> Iterable[tuple[Optional[str], int]]:
    current: Optional[str] = None
    count = 0
    for item in items:
        if count and item == current:
            count += 1
            continue
        if count:
            yield current, count
        current, count = item, 1
    if count:
        yield current, count
