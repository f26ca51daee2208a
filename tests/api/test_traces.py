"""With tracing on, a failover is one trace (a span per step and per attempt) and each API request
a span; the SDK's in-memory exporter stands in for the OTLP collector."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from takeover import tracing
from takeover.main import Runtime, build
from takeover.settings import Settings
from takeover.testing import FakeClock
from tests.api.pool import Pool
from tests.conftest import FAST

Spans = InMemorySpanExporter


@pytest.fixture
def spans() -> Spans:
    return InMemorySpanExporter()


@pytest.fixture
def traced(spans: Spans, clock: FakeClock, tmp_path: Path) -> Iterator[Pool]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    settings = {**FAST, "database_url": f"sqlite:///{tmp_path}/t.db", "admin_token": "admin-secret"}
    runtime: Runtime = build(Settings.model_validate(settings), clock, traces=provider)
    client = TestClient(runtime.app, headers={"Authorization": "Bearer admin-secret"})
    yield Pool(client, runtime, clock)
    runtime.store.engine.dispose()


def children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[str]:
    assert parent.context is not None
    return [s.name for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


def test_a_node_failure_failover_is_one_trace_with_its_steps_and_attempt(traced: Pool, spans: Spans) -> None:
    _n1, n2, web = traced.two_nodes_running_web()
    traced.elapse(6)  # n1 stays silent past offline_after
    traced.beat(n2)
    traced.cycle()
    traced.beat_twice(n2)
    traced.cycle()
    [failover] = traced.get(f"/api/v1/failovers?instance_id={web['id']}")
    assert failover["status"] == "completed"

    finished = list(spans.get_finished_spans())
    [root] = [s for s in finished if s.name == "failover"]
    assert root.attributes is not None
    assert root.attributes["takeover.failover.id"] == failover["id"]
    assert root.attributes["takeover.instance.id"] == web["id"]
    assert root.attributes["takeover.failover.reason"] == "node_failure"
    assert root.attributes["takeover.node.target"] == n2.id
    assert root.parent is None
    assert root.status.status_code is not StatusCode.ERROR
    assert root.context is not None
    in_trace = [s for s in finished if s.context and s.context.trace_id == root.context.trace_id]
    assert children(in_trace, root) == ["step pending", "step backing_up", "step migrating", "step restoring"]
    [attempt] = [s for s in in_trace if s.name.startswith("attempt ")]
    assert attempt.attributes is not None
    assert attempt.attributes["takeover.attempt.node"] == n2.id
    assert attempt.attributes["takeover.attempt.strategy"] == attempt.name.removeprefix("attempt ")
    [step] = [
        s for s in in_trace if attempt.parent and s.context and s.context.span_id == attempt.parent.span_id
    ]
    assert step.name in ("step migrating", "step restoring"), "an attempt is a child of the step it began in"
    assert root.start_time is not None
    assert root.end_time is not None
    total_ms = (root.end_time - root.start_time) / 1e6
    assert total_ms == pytest.approx(failover["timings"]["total_ms"], abs=1.0)

    requests = {s.name for s in finished if s.name.startswith(("GET ", "POST "))}
    assert "POST /api/v1/nodes/{node_id}/heartbeat" in requests, requests


def test_a_failover_that_gives_up_is_an_error_span_saying_why(traced: Pool, spans: Spans) -> None:
    n1 = traced.node("n1")
    traced.beat(n1)
    web = traced.instance("web")
    traced.beat_twice(n1)
    traced.elapse(6)  # n1 dies, and there is no other node
    traced.cycle()
    [failover] = traced.get(f"/api/v1/failovers?instance_id={web['id']}")
    assert failover["status"] == "failed"
    [root] = [s for s in spans.get_finished_spans() if s.name == "failover"]
    assert root.status.status_code is StatusCode.ERROR
    assert root.status.description == failover["error"]


def test_tracing_is_off_without_an_otlp_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in tracing.ENDPOINTS:
        monkeypatch.delenv(name, raising=False)
    assert tracing.tracer_provider() is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    provider = tracing.tracer_provider("takeover-test")
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "takeover-test"
    provider.shutdown()
