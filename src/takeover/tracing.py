"""OpenTelemetry traces, off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or its traces-only twin) is set.

Off, nothing of the SDK is imported and no span is made: the heartbeat path pays nothing. On,
spans go to the OTLP/HTTP collector the standard ``OTEL_*`` variables name (endpoint, headers,
``OTEL_SERVICE_NAME``), batched in a background thread.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def enabled() -> bool:
    return any(os.environ.get(name) for name in ENDPOINTS)


def tracer_provider(service: str = "takeover") -> TracerProvider | None:
    """A provider exporting over OTLP/HTTP, or None when tracing is off."""
    if not enabled():
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


__all__ = ["enabled", "tracer_provider"]
