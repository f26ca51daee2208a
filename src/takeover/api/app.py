"""FastAPI application: create_app(services, controllers) builds it; nothing global."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI
from opentelemetry.trace import TracerProvider

from takeover.api import stream
from takeover.api.errors import ERROR_RESPONSES, install_error_handlers
from takeover.api.inputs import RefuseNul
from takeover.api.observe import RequestMetrics
from takeover.api.routes import (
    agentdist,
    failovers,
    instances,
    jointokens,
    nodes,
    orchestrator,
    provider,
    regiongroups,
    routing,
    system,
)
from takeover.console.routes import install_console
from takeover.control.loop import ControlLoop
from takeover.control.services import Services


def create_app(
    services: Services,
    controllers: ControlLoop | None = None,
    *,
    max_body_bytes: int = 1_048_576,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    tracer_provider: TracerProvider | None = None,
) -> FastAPI:
    """``tracer_provider``: a span per request (FastAPI's own OpenTelemetry support); None: off."""
    app = FastAPI(
        title="takeover",
        version="0.1.0",
        lifespan=lifespan,
        max_body_size=max_body_bytes,
        # Off unless tracing is configured: FastAPI's per-request check for a provider cost about
        # a tenth of the heartbeat path (measured with py-spy, docs/BENCHMARKS.md).
        telemetry=(
            {"tracing": True, "tracer_provider": tracer_provider, "metrics": False, "logs": False}
            if tracer_provider is not None
            else {"tracing": False, "metrics": False, "logs": False}
        ),
    )
    app.state.services = services
    app.state.controllers = controllers
    install_error_handlers(app)
    app.add_middleware(RefuseNul)
    app.add_middleware(RequestMetrics, histogram=services.metrics.http_seconds)
    for module in (
        nodes,
        jointokens,
        agentdist,
        instances,
        failovers,
        orchestrator,
        provider,
        regiongroups,
        routing,
    ):
        app.include_router(module.router, prefix="/api/v1", responses=ERROR_RESPONSES)
    app.include_router(system.router, responses=ERROR_RESPONSES)
    app.include_router(stream.router)
    install_console(app)
    return app


__all__ = ["create_app"]
