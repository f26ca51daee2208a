"""What a heartbeat says about this node: its load, and each runner with its latest output."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import psutil

from takeover.agent.runner import Runner
from takeover.domain.models import InstanceState

_LOG_CHUNK = 16 * 1024  # bytes of one instance's output per heartbeat
_LOG_BUDGET = 256 * 1024  # of all of them together: a heartbeat body stays far under its 1 MiB limit


def load() -> dict[str, float]:
    cores = os.cpu_count() or 1
    return {
        "cpu_load": round(min(1.0, os.getloadavg()[0] / cores), 4),
        "memory_load": round(psutil.virtual_memory().percent / 100, 4),
    }


def reports(runners: Iterable[Runner]) -> tuple[list[dict[str, Any]], list[tuple[Runner, int]]]:
    """Each runner's report with its output since the last accepted heartbeat, and where each
    shipped log would then end (applied only once the control plane accepted it)."""
    found, shipped, budget = [], [], _LOG_BUDGET
    for runner in runners:
        one = report(runner)
        if budget > 0:
            text, end = runner.unsent_log(min(_LOG_CHUNK, budget))
            if text:
                one["log"] = text
                shipped.append((runner, end))
                budget -= end - runner.log_shipped
        found.append(one)
    return found, shipped


def report(runner: Runner) -> dict[str, Any]:
    out: dict[str, Any] = {"id": runner.instance_id, "epoch": runner.epoch, "state": runner.state.value}
    if runner.state is InstanceState.RUNNING:
        out["port"] = runner.advertised_port or runner.port
        if runner.advertised:
            out["host"] = runner.advertised
    if runner.error or runner.warning:
        out["error"] = (runner.error or runner.warning or "")[:2000]
    if runner.snapshot_error:
        out["snapshot_error"] = runner.snapshot_error[:2000]
    for key in ("restored_from", "last_snapshot", "image_digest"):
        if getattr(runner, key):
            out[key] = getattr(runner, key)
    return out
