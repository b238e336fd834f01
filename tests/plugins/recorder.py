"""A plugin that records every lifecycle hook call, with the event fields as they were then
(events are filled in as the batch goes, so a later look would see the final values)."""

from __future__ import annotations

from typing import Any, Mapping, Optional

from statefun_core.plugins import BatchEvent, InvocationEvent, hookimpl


def batch_fields(batch: BatchEvent) -> dict[str, Any]:
    return {
        "function_type": batch.function_type,
        "function_id": batch.function_id,
        "batch_size": batch.batch_size,
        "outcome": batch.outcome,
        "state_bytes_read": batch.state_bytes_read,
        "state_bytes_written": batch.state_bytes_written,
        "messages": batch.messages,
        "delayed_messages": batch.delayed_messages,
        "egress_records": batch.egress_records,
        "missing_states": batch.missing_states,
    }


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.batches: list[BatchEvent] = []

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def fields(self, name: str) -> list[dict[str, Any]]:
        return [fields for hook, fields in self.calls if hook == name]

    @hookimpl
    def statefun_batch_started(self, batch: BatchEvent) -> None:
        self.batches.append(batch)
        batch.scratch["recorder"] = "from batch_started"
        fields = batch_fields(batch)
        fields["headers"] = dict(batch.headers)
        fields["started"] = batch.started
        self.calls.append(("batch_started", fields))

    @hookimpl
    def statefun_invocation_started(self, invocation: InvocationEvent) -> None:
        invocation.scratch["recorder"] = f"from invocation_started #{invocation.index}"
        self.calls.append(
            (
                "invocation_started",
                {
                    "index": invocation.index,
                    "caller": invocation.caller,
                    "argument_typename": invocation.argument_typename,
                    "batch_scratch": invocation.batch.scratch.get("recorder"),
                },
            )
        )

    @hookimpl
    def statefun_invocation_finished(
        self, invocation: InvocationEvent, error: Optional[BaseException]
    ) -> None:
        self.calls.append(
            (
                "invocation_finished",
                {
                    "index": invocation.index,
                    "error": error,
                    "scratch": invocation.scratch.get("recorder"),
                },
            )
        )

    @hookimpl
    def statefun_batch_finished(self, batch: BatchEvent) -> None:
        fields = batch_fields(batch)
        fields["duration"] = batch.duration
        fields["scratch"] = batch.scratch.get("recorder")
        self.calls.append(("batch_finished", fields))

    @hookimpl
    def statefun_batch_failed(self, batch: BatchEvent, error: BaseException) -> None:
        fields = batch_fields(batch)
        fields["error"] = error
        fields["scratch"] = batch.scratch.get("recorder")
        self.calls.append(("batch_failed", fields))

    @hookimpl
    def statefun_request_failed(
        self, error: BaseException, batch: Optional[BatchEvent], headers: Mapping[str, str]
    ) -> None:
        self.calls.append(
            ("request_failed", {"error": error, "batch": batch, "headers": dict(headers)})
        )
