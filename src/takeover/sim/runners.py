"""What a simulated agent holds per instance, and which safeguards the model includes."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from takeover.domain.heartbeat import InstanceReport
from takeover.domain.models import Instance, InstanceState
from takeover.sim.workload import Run


@dataclass
class Models:
    """What the model includes: switched off, it shows the checks catch what each one prevents."""

    keepers: bool = True  # processes have a keeper (issue 27)
    cp_clock_stamps: bool = True  # snapshots stamped by the control plane's clock, after the newest
    snapshot_interval: float = 20.0
    snapshots_kept: int = 5


@dataclass
class Runner:
    item: Instance
    state: InstanceState = InstanceState.STARTING
    run: Run | None = None
    released: bool = False
    error: str | None = None
    restored_from: str | None = None
    last_snapshot: str | None = None
    snapshot_error: str | None = None
    next_snapshot: float | None = None

    @property
    def epoch(self) -> int:
        return self.item.epoch

    def report(self, instance_id: str) -> InstanceReport:
        """What the agent's heartbeat says of it (agent/reports.py)."""
        return InstanceReport(
            UUID(instance_id),
            self.epoch,
            self.state,
            port=20000 if self.state is InstanceState.RUNNING else None,
            error=self.error,
            restored_from=self.restored_from,
            last_snapshot=self.last_snapshot,
            snapshot_error=self.snapshot_error,
        )
