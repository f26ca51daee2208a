"""How long the leader has itself watched each node stay silent.

A node's silence is not "now minus its last stored heartbeat time": that compares the clock of
the replica that stored the heartbeat with the leader's, so a clock stepped forward on the leader
(or back on another replica) declares live nodes offline, and after an outage of the control
plane every node looks silent for as long as the control plane was away. Instead the leader notes,
on its own monotonic clock, when it saw each node's heartbeat stamp change, and counts silence only
across time it watched without a break: gaining the lease, a cycle that could not read the store,
or a gap between cycles (a paused or starved leader) starts every node's count again, so nothing
is failed over for the control plane's own absence (docs/rules.md, "Liveness").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

DRIFT = 0.01  # how much faster than true time a node's monotonic clock may run, at most
HISTORY = 16  # stamps remembered per node


@dataclass
class Liveness:
    max_gap: float  # seconds between cycles beyond which the leader was away, not watching
    epoch: int | None = None
    _last_cycle: float | None = None
    _seen: dict[UUID, tuple[datetime | None, float]] = field(default_factory=dict)
    _held: dict[UUID, list[tuple[float, datetime]]] = field(default_factory=dict)

    def cycle(self, at: float, epoch: int) -> bool:
        """A monitor cycle as the holder of lease ``epoch`` starts at monotonic ``at``; True when
        the watch starts again here (a new lease, or the leader was away)."""
        away = self._last_cycle is None or at - self._last_cycle > self.max_gap or at < self._last_cycle
        self._last_cycle = at
        if away or epoch != self.epoch:
            self.epoch = epoch
            self._seen.clear()
            return True
        return False

    def interrupted(self) -> None:
        """A cycle failed (the store away): the next one starts the watch again."""
        self._last_cycle = None

    def silent_for(self, node_id: UUID, stamp: datetime | None, at: float) -> float:
        """Seconds the leader has watched ``node_id`` without its heartbeat stamp changing."""
        seen = self._seen.get(node_id)
        if seen is None or seen[0] != stamp:  # first seen in this watch, or it heartbeat since
            self._seen[node_id] = (stamp, at)
            return 0.0
        return at - seen[1]

    def forget(self, keep: set[UUID]) -> None:
        """Nodes deleted since: their entries would only grow the map."""
        for node_id in self._seen.keys() - keep:
            del self._seen[node_id]
        for node_id in self._held.keys() - keep:
            del self._held[node_id]

    def held(self, node_id: UUID, stamp: datetime | None, held_for: float | None, at: float) -> None:
        """A node reports the newest stamp it holds and for how long (its monotonic seconds): it
        has held it since at most ``at`` minus that, less the drift allowed its clock."""
        if stamp is None or held_for is None:
            return
        since = at - max(0.0, held_for) * (1 - DRIFT)
        history = self._held.setdefault(node_id, [])
        if not history or stamp > history[-1][1]:
            history.append((since, stamp))
            del history[:-HISTORY]  # one change a heartbeat at most: this spans many offline_after

    def newer_since(self, node_id: UUID, than: datetime) -> float | None:
        """Since when (at the latest) the node has held a stamp newer than ``than``."""
        return next((since for since, stamp in self._held.get(node_id, ()) if stamp > than), None)
