"""The context a function is called with: its address, caller, storage and outbox."""

from __future__ import annotations

import abc
from datetime import timedelta
from typing import Any, Optional, Union

from ._mypyc import caused, mypyc_attr
from .core import SdkAddress
from .errors import LimitExceededError
from .messages import EgressMessage, Message

__all__ = ["Context", "DelayedMessage"]


class DelayedMessage:
    """A ``send_after`` (``message`` set) or a cancellation (``message`` is None)."""

    __slots__ = ("cancellation_token", "delay_ms", "message")

    delay_ms: int
    message: Optional[Message]
    cancellation_token: Union[str, Any]  # a str, or what was given (see Message.target_id)

    def __init__(
        self, delay_ms: int, message: Optional[Message], cancellation_token: Any = ""
    ) -> None:
        self.delay_ms = delay_ms
        self.message = message
        self.cancellation_token = cancellation_token


@mypyc_attr(allow_interpreted_subclasses=True)
class Context(abc.ABC):
    """What a function can see and do while it handles a message.

    A subclass must give ``address``, ``storage`` and ``caller``; the sends do nothing here, as
    in the official SDK, so a test double may leave out those it does not need.
    """

    __slots__ = ()

    @property
    @abc.abstractmethod
    def address(self) -> SdkAddress:
        """The address of the function instance being invoked."""

    @property
    @abc.abstractmethod
    def storage(self) -> Any:
        """The address-scoped storage: one attribute per registered ``ValueSpec``."""

    @property
    @abc.abstractmethod
    def caller(self) -> Optional[SdkAddress]:
        """The sending function's address, or None for a message from an ingress."""

    def send(self, message: Message) -> None:  # noqa: B027 (a no-op, as in the official SDK)
        """Send a message to a function."""

    def send_after(  # noqa: B027
        self, duration: timedelta, message: Message, cancellation_token: str = ""
    ) -> None:
        """Send a message after ``duration``; a non-empty token makes it cancellable."""

    def cancel_delayed_message(self, cancellation_token: str) -> None:  # noqa: B027
        """Cancel a pending delayed message (best effort: a delivered one is not recalled)."""

    def send_egress(self, message: EgressMessage) -> None:  # noqa: B027
        """Send a record to an egress."""


class InvocationContext(Context):
    """The context of one batch; ``caller`` changes with each invocation.

    ``storage`` is a plain attribute, not a property: functions read it on every invocation.
    The sends take ``Any``: their documented types are :class:`Context`'s, and they check
    what they are given themselves, with messages that say what to pass (a compiled build
    would check the annotations first, with its own).
    The address and the caller are built when read, from the request's protobuf: most
    functions never read them, and looking for a caller costs every invocation otherwise.
    """

    __slots__ = (
        "_address",
        "_invocation",
        "_max_outgoing",
        "_target",
        "outbox",
        "storage",
    )

    storage: Any
    _address: SdkAddress

    def __init__(self, target: Any, storage: Any) -> None:
        self._target = target  # the request's protobuf Address
        self._invocation: Any = None  # the protobuf Invocation being handled
        self.storage = storage
        # everything sent, in order: Message, DelayedMessage and EgressMessage
        self.outbox: list[Union[Message, DelayedMessage, EgressMessage]] = []
        self._max_outgoing: float = float("inf")  # Limits.outgoing_per_batch

    def __repr__(self) -> str:
        address, caller = self.address, self.caller
        came_from = "" if caller is None else f", caller={caller.typename}/{caller.id}"
        return f"Context(address={address.typename}/{address.id}{came_from})"

    def _over_outgoing_limit(self) -> LimitExceededError:
        sent = len(self.outbox)
        return LimitExceededError("outgoing_per_batch", sent + 1, sent)

    @property
    def address(self) -> SdkAddress:
        try:
            return self._address
        except AttributeError:  # built on first use, in the slot
            target = self._target
            address = self._address = SdkAddress(
                target.namespace, target.type, target.id, f"{target.namespace}/{target.type}"
            )
            return address

    @property
    def caller(self) -> Optional[SdkAddress]:
        invocation = self._invocation
        if invocation is None or not invocation.HasField("caller"):
            return None  # a message from an ingress
        pb = invocation.caller
        namespace, type, id = pb.namespace, pb.type, pb.id
        if not (namespace or type or id):
            return None
        return SdkAddress(namespace, type, id, f"{namespace}/{type}")

    def send(self, message: Any) -> None:
        if not isinstance(message, Message):
            raise TypeError(f"send() takes a Message, got {_named(message)}")
        outbox = self.outbox
        if len(outbox) >= self._max_outgoing:
            raise self._over_outgoing_limit()
        outbox.append(message)

    def send_after(self, duration: Any, message: Any, cancellation_token: Any = "") -> None:
        if not isinstance(message, Message):
            raise TypeError(f"send_after() takes a Message, got {_named(message)}")
        try:
            delay_ms = int(duration.total_seconds() * 1000.0)
        except AttributeError:
            raise caused(
                TypeError(
                    f"send_after() takes a datetime.timedelta as its duration, got {duration!r}: "
                    "e.g. timedelta(seconds=30)"
                ),
                None,
            )
        if delay_ms < 0:
            raise ValueError(f"send_after() needs a non-negative duration, got {duration}")
        if len(self.outbox) >= self._max_outgoing:
            raise self._over_outgoing_limit()
        self.outbox.append(DelayedMessage(delay_ms, message, cancellation_token or ""))

    def cancel_delayed_message(self, cancellation_token: Any) -> None:
        if not isinstance(cancellation_token, (str, bytes)):  # as protobuf refuses it
            raise TypeError(
                "cancel_delayed_message() takes a str token, "
                f"got {type(cancellation_token).__name__}"
            )
        if not cancellation_token:
            raise ValueError("cancel_delayed_message() needs a non-empty cancellation token")
        if len(self.outbox) >= self._max_outgoing:
            raise self._over_outgoing_limit()
        self.outbox.append(DelayedMessage(0, None, cancellation_token))

    def send_egress(self, message: Any) -> None:
        if not isinstance(message, EgressMessage):
            raise TypeError(f"send_egress() takes an EgressMessage, got {_named(message)}")
        if len(self.outbox) >= self._max_outgoing:
            raise self._over_outgoing_limit()
        self.outbox.append(message)


def _named(refused: object) -> str:
    """The class of what a send refused, and the send that takes it if it is the other kind."""
    if isinstance(refused, EgressMessage):
        return "EgressMessage: an egress record goes out with context.send_egress()"
    if isinstance(refused, Message):
        return "Message: a message to a function goes with context.send() or send_after()"
    return type(refused).__name__
