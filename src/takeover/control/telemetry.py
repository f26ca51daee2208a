"""What each failover leaves for operators: its metrics, a log line as it opens and as it ends,
and, with tracing on, one trace with a span per step and per attempt.

The trace is written when the failover ends, from its stored record (timings and attempt log),
so a failover that moved between leaders still makes one whole trace, and a cycle of the
executor never waits on a span.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import structlog
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from takeover.domain.failover import Attempt, Failover, FailoverStatus
from takeover.metrics import Metrics

log = structlog.get_logger("takeover.failovers")
_ROUNDING = timedelta(milliseconds=1)


class FailoverTelemetry:
    def __init__(self, metrics: Metrics, tracer: Tracer | None = None) -> None:
        self.metrics = metrics
        self.tracer = tracer

    def opened(self, failover: Failover) -> None:
        self.metrics.failover_opened(failover)
        log.info(
            "failover opened",
            failover_id=str(failover.id),
            instance_id=str(failover.instance_id),
            reason=failover.reason.value,
            source_node_id=_text(failover.source_node_id),
        )

    def ended(self, failover: Failover) -> None:
        self.metrics.failover_ended(failover)
        log.info(
            "failover ended",
            failover_id=str(failover.id),
            instance_id=str(failover.instance_id),
            status=failover.status.value,
            target_node_id=_text(failover.target_node_id),
            total_ms=failover.timings.get("total_ms"),
            error=failover.error,
        )
        if self.tracer is not None:
            record_trace(self.tracer, failover)


def record_trace(tracer: Tracer, failover: Failover) -> None:
    """failover -> step <name> (each step's recorded duration, in order) -> attempt <strategy>."""
    end = failover.completed_at or failover.step_started_at
    root = tracer.start_span("failover", start_time=_ns(failover.created_at), attributes=_about(failover))
    context = trace.set_span_in_context(root)
    steps: list[tuple[datetime, datetime, Span]] = []  # start, end, span
    at = failover.created_at
    for key, ms in failover.timings.items():
        if key == "total_ms":
            continue
        until = at + timedelta(milliseconds=ms)
        step = tracer.start_span(f"step {key.removesuffix('_ms')}", context=context, start_time=_ns(at))
        steps.append((at, until, step))
        at = until
    for number, attempt in enumerate(failover.attempts, start=1):
        started = attempt.started_at or failover.created_at
        # The step it began in: the last to start by then (timings are rounded to 0.1 ms).
        parent = next((s for a, _, s in reversed(steps) if a <= started + _ROUNDING), root)
        span = tracer.start_span(
            f"attempt {attempt.strategy}",
            context=trace.set_span_in_context(parent),
            start_time=_ns(started),
            attributes=_attempt(number, attempt, failover, last=number == len(failover.attempts)),
        )
        if attempt.error:
            span.set_status(Status(StatusCode.ERROR, attempt.error))
        span.end(end_time=_ns(started + timedelta(milliseconds=attempt.ms or 0)))
    for _, until, step in steps:
        step.end(end_time=_ns(until))
    if failover.status is FailoverStatus.FAILED:
        root.set_status(Status(StatusCode.ERROR, failover.error or "failed"))
    root.end(end_time=_ns(end))


def _about(failover: Failover) -> dict[str, Any]:
    about = {
        "takeover.failover.id": str(failover.id),
        "takeover.instance.id": str(failover.instance_id),
        "takeover.failover.reason": failover.reason.value,
        "takeover.failover.status": failover.status.value,
        "takeover.failover.strategy": failover.strategy or "",
        "takeover.failover.attempts": len(failover.attempts),
        "takeover.node.source": _text(failover.source_node_id) or "",
        "takeover.node.target": _text(failover.target_node_id) or "",
        "takeover.snapshot": failover.backup_id or "",
    }
    if failover.error:
        about["takeover.failover.error"] = failover.error
    return about


def _attempt(number: int, attempt: Attempt, failover: Failover, last: bool) -> dict[str, Any]:
    about: dict[str, Any] = {
        "takeover.attempt.number": number,
        "takeover.attempt.strategy": attempt.strategy,
        "takeover.attempt.node": _text(attempt.node_id) or "",
    }
    if last and failover.status is FailoverStatus.COMPLETED and failover.backup_id:
        about["takeover.snapshot"] = failover.backup_id
    if attempt.error:
        about["takeover.attempt.error"] = attempt.error
    return about


def _ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000_000)


def _text(value: object | None) -> str | None:
    return str(value) if value is not None else None


__all__ = ["FailoverTelemetry", "record_trace"]
