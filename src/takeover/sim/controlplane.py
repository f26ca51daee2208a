"""The control plane under simulation: its own controllers and store, on virtual time.

Each replica is the ControlLoop ``takeover serve`` builds (``main.controller_loop``), with a clock of
its own (a fault may skew or step it), over one shared SQL store (SQLite in memory, or the
PostgreSQL a URL names). Heartbeats are applied as the API applies them, through
``store.nodes.apply_heartbeats``; a replica that is down, paused or cut off answers nothing, and a
store outage makes every statement fail as a lost database does (StoreUnavailable).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from takeover.control.loop import ControlLoop, CycleOutcome
from takeover.control.telemetry import FailoverTelemetry
from takeover.control.values import AgentTimings
from takeover.domain.errors import TakeoverError
from takeover.domain.failover import Failover
from takeover.domain.heartbeat import Heartbeat
from takeover.main import controller_loop, open_store
from takeover.metrics import Metrics
from takeover.ports import LeaseToken
from takeover.settings import Settings
from takeover.sim.world import World
from takeover.store import HeartbeatResult, Store

HEALTH_CHECK = 3.0  # seconds until the balancer stops sending to a replica that does not answer


class SimClock:
    """A replica's clock: the true time, off by its skew."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.skew = 0.0

    def now(self) -> datetime:
        return self.world.wall(self.skew)

    def elapsed(self) -> float:
        return self.world.now  # a step of its wall clock moves no monotonic one


@dataclass
class Replica:
    name: str
    clock: SimClock
    loop: ControlLoop
    up: bool = True
    paused: bool = False
    unhealthy_since: float | None = None  # down or paused since (the balancer's view)
    stalled: tuple[LeaseToken, datetime] | None = None  # paused mid-cycle: what it held then
    waking: bool = False


@dataclass
class ControlPlane:
    world: World
    settings: Settings
    store: Store
    opened: list[tuple[float, Failover]] = field(default_factory=list)  # automatic failovers
    replicas: list[Replica] = field(default_factory=list)
    store_down: bool = False
    _started: int = 0

    @classmethod
    def open(cls, world: World, settings: Settings, url: str) -> ControlPlane:
        store = open_store(settings.model_copy(update={"database_url": url}))
        # The store's own clock, as PostgreSQL's is: the true time, whatever a replica's says.
        store.nodes.stamps = lambda _: world.wall(0.0)
        plane = cls(world, settings, store)
        sa.event.listen(store.engine, "before_cursor_execute", plane._outage)
        return plane

    def _outage(self, *_: Any) -> None:
        if self.store_down:
            raise sqlite3.OperationalError("the store is unreachable (simulated outage)")

    @property
    def timings(self) -> AgentTimings:
        s = self.settings
        return AgentTimings(s.heartbeat_interval, s.fence_after, s.sync_interval, s.fence_grace)

    def add_replica(self) -> Replica:
        """A replica process, as started anew (its holder id is new, as a new pid's is)."""
        self._started += 1
        clock = SimClock(self.world)
        holder = f"replica-{self._started}"
        telemetry = FailoverTelemetry(Metrics())
        loop = controller_loop(
            self.settings.model_copy(update={"replica_id": holder}),
            self.store,
            clock,
            telemetry,
            self.timings,
            None,
        )
        replica = Replica(holder, clock, loop)
        self.replicas.append(replica)
        self._schedule_cycle(replica, self.world.rng.uniform(0, self.settings.monitor_interval))
        return replica

    def _schedule_cycle(self, replica: Replica, delay: float) -> None:
        self.world.after(delay, lambda: self._cycle(replica))

    def _cycle(self, replica: Replica) -> None:
        if not replica.up:
            return  # a crashed replica's loop is gone; a restart is a new replica
        if not replica.paused:
            self._record(replica, replica.loop.run_cycle())
        self._schedule_cycle(replica, self.settings.monitor_interval)

    def wake(self, replica: Replica) -> None:
        """New work (an instance reported running): the replica runs a cycle now, as the API wakes it."""
        if replica.waking or not replica.up:
            return
        replica.waking = True

        def run() -> None:
            replica.waking = False
            if replica.up and not replica.paused:
                self._record(replica, replica.loop.run_cycle())

        self.world.after(0.001, run)

    def _record(self, replica: Replica, outcome: CycleOutcome) -> None:
        if outcome.monitor is not None:
            for failover in outcome.monitor.failovers:
                self.opened.append((self.world.now, failover))
                self.world.log(
                    f"{replica.name}: failover opened for {failover.instance_id} ({failover.reason})"
                )
        if outcome.executor is not None:
            for step in outcome.executor.steps:
                self.world.log(f"{replica.name}: {step}")
        if outcome.error:
            self.world.log(f"{replica.name}: cycle: {outcome.error}")

    def pause(self, replica: Replica) -> None:
        token = replica.loop.leadership.token
        replica.paused, replica.unhealthy_since = True, self.world.now
        replica.stalled = (token, replica.clock.now()) if token is not None else None

    def resume(self, replica: Replica) -> None:
        """A leader paused mid-cycle goes on with the lease and the time it read before the pause:
        its writes must be refused if the lease moved on meanwhile."""
        replica.paused, replica.unhealthy_since = False, None
        if replica.stalled is not None and replica.up:
            token, then = replica.stalled
            replica.stalled = None
            self._record(replica, replica.loop.work(token, lambda: then))

    def crash(self, replica: Replica) -> None:
        replica.up, replica.unhealthy_since = False, self.world.now

    def serving(self) -> list[Replica]:
        """Replicas the balancer sends to: the up ones, and for a while those that stopped answering."""
        return [
            r
            for r in self.replicas
            if r.unhealthy_since is None or self.world.now - r.unhealthy_since < HEALTH_CHECK
        ]

    def heartbeat(
        self,
        token_hash: str,
        beat: Heartbeat,
        reply: Callable[[HeartbeatResult | TakeoverError, datetime], None],
    ) -> None:
        """A heartbeat reaches the balancer; the replica it picks answers, or leaves it hanging."""
        choices = self.serving()
        if not choices:
            return  # connection refused: the agent's request fails (it times out the same way)
        replica = self.world.rng.choice(choices)
        if not replica.up or replica.paused:
            return
        now = replica.clock.now()
        try:
            (result,) = self.store.nodes.apply_heartbeats([(token_hash, beat)], now)
        except TakeoverError as error:  # the store is away: a 503
            result = error
        if isinstance(result, HeartbeatResult) and result.state_changes:
            self.wake(replica)
        reply(result, now)
