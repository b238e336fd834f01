"""The instance the ``opentelemetry`` entry point registers: the global tracer provider and
propagator, looked up when spans start (so configuring OpenTelemetry later is fine)."""

from .plugin import OpenTelemetryPlugin

plugin: OpenTelemetryPlugin = OpenTelemetryPlugin()
