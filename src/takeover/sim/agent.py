"""A node's agent under simulation, deciding as the real one does.

Its decisions are the agent's own: ``plan()`` turns each reply into stop / hand over / resume /
start, the real ``Fence`` (on this node's virtual monotonic clock) says when to stop everything
and when work may start again, snapshots are stamped by the ``ControlPlaneClock`` and pruned by
the domain's rules. What it simulates is the I/O: processes are intervals (``Workloads``),
restores and snapshots take a random while, and the loop wakes when it has something to do.

While paused (SIGSTOP, a D-state read) the agent does nothing at all, its runners go on; a
starved one wakes late. A runner's keeper, when the model has keepers, stops it at the fence
deadline the agent last wrote, and stops a volume runner once a newer epoch holds its volume.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from takeover.agent.cpclock import ControlPlaneClock
from takeover.agent.fence import Fence
from takeover.agent.plan import Act, Held, plan, snapshot_due
from takeover.domain.desired import DesiredState
from takeover.domain.errors import TakeoverError
from takeover.domain.heartbeat import Heartbeat
from takeover.domain.models import Instance, InstanceState
from takeover.domain.snapshots import (
    SnapshotRef,
    empty_start_refusal,
    restore_candidates,
    stamp_after,
    to_prune,
)
from takeover.sim.controlplane import ControlPlane
from takeover.sim.keepers import Keepers
from takeover.sim.network import Network
from takeover.sim.runners import Models, Runner
from takeover.sim.witness import SimWitness
from takeover.sim.workload import Run, Volume, Workloads, Written
from takeover.sim.world import World
from takeover.store import HeartbeatResult


@dataclass
class SimAgent:
    world: World
    name: str
    region: str
    node_id: UUID
    token_hash: str
    plane: ControlPlane
    net: Network
    loads: Workloads
    models: Models
    peers: dict[UUID, SimWitness]  # every agent's witness part, by node id
    up: bool = True
    paused: bool = False
    late: float = 0.0  # while starved: how late each wake-up may be
    wall_skew: float = 0.0
    runners: dict[str, Runner] = field(default_factory=dict)
    wanted: dict[str, Instance] = field(default_factory=dict)
    standby: list[Instance] = field(default_factory=list)
    busy: set[str] = field(default_factory=set)  # workspaces a job (restore, snapshot) uses
    fence: Fence = field(init=False)
    cp_clock: ControlPlaneClock = field(init=False)
    witness: SimWitness = field(init=False)
    _in_flight: tuple[int, float, float] | None = None  # (beat, sent, gives up at)
    _inbox: list[tuple[int, HeartbeatResult | TakeoverError, datetime]] = field(default_factory=list)
    _beats: int = 0
    _lives: int = 0  # boots so far: a job of an earlier life is lost with it
    _next_beat: float = 0.0
    _wake_at: float | None = None
    _pending: list[Callable[[], None]] = field(default_factory=list)  # jobs done, for the loop
    _reported: frozenset[tuple[str, int, InstanceState]] = frozenset()
    _keepers: Keepers = field(init=False)

    def __post_init__(self) -> None:
        answering = lambda: self.up and not self.paused  # noqa: E731
        self.witness = SimWitness(
            self.world, self.net, self.name, self.region, self.peers, answering, lambda: self.late
        )
        self.peers[self.node_id] = self.witness
        self._keepers = Keepers(self)
        self.boot()

    def mono(self) -> float:
        return float(self.world.now)

    def boot(self) -> None:
        """A (re)started agent: nothing runs, it knows no fence yet; its disk is what it was."""
        self._lives += 1
        self.fence = Fence(None, self.mono)
        self.cp_clock = ControlPlaneClock(self.mono, lambda: self.world.wall(self.wall_skew))
        self.runners, self.wanted, self.standby, self.busy = {}, {}, [], set()
        self._in_flight, self._inbox, self._pending = None, [], []
        self._next_beat, self._wake_at = self.mono(), None
        self.witness.forget()
        self.schedule(self.mono())

    # the loop -------------------------------------------------------------------------------

    def schedule(self, when: float) -> None:
        if self.late:
            when += self.world.rng.uniform(0, self.late)
        if self._wake_at is not None and self._wake_at <= when:
            return
        self._wake_at = when
        self.world.at(when, lambda: self._woken(when))

    def _woken(self, when: float) -> None:
        if self._wake_at != when:
            return  # superseded by an earlier wake-up
        self._wake_at = None
        self.step()

    def step(self) -> None:
        """One pass of the agent's loop (agent.Agent.run)."""
        if not self.up or self.paused or self._in_flight is not None:
            return
        interval = self.plane.settings.heartbeat_interval
        self.fence.ticked(interval)
        self.witness.tick(self.fence, interval)
        self._fence_if_silent()
        done, self._pending = self._pending, []
        for finish in done:
            finish()
        self._start_missing()
        states = frozenset((i, r.epoch, r.state) for i, r in self.runners.items())
        if self.mono() >= self._next_beat or states != self._reported:
            self._reported = states
            self._next_beat = self.mono() + self.fence.beat_every(interval)
            self._beat()
            return
        self._fence_if_silent()
        self._snapshots()
        self._plan_wake()

    def _plan_wake(self) -> None:
        """The real loop comes round every 0.1 s; here it wakes when there is something to do,
        and at least every 0.4 heartbeat intervals, so that only a paused or starved agent comes
        round late by the fence's measure (over half an interval)."""
        wakes = [
            self._next_beat,
            self.mono() + 0.4 * self.plane.settings.heartbeat_interval,
            self.witness.next_probe,
        ]
        if self.fence.deadline is not None and not self.fence.fenced:
            wakes.append(self.fence.deadline + 0.1)
        if self.fence.settles_at is not None and self.fence.settles_at > self.mono():
            wakes.append(self.fence.settles_at)
        wakes += [  # a snapshot under way wakes the loop when it is done
            r.next_snapshot
            for i, r in self.runners.items()
            if r.next_snapshot is not None and i not in self.busy
        ]
        self.schedule(max(min(wakes), self.mono() + 0.001))

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        if self._inbox:  # a reply that came while it was stopped is read now
            beat, result, server_time = self._inbox.pop()
            self._replied(beat, result, server_time)
        elif self._in_flight is not None and self.mono() >= self._in_flight[2]:
            self._in_flight = None
        self.step()

    def crash(self) -> None:
        """The machine is gone: its processes with it."""
        self.up = False
        for runner in self.runners.values():
            if runner.run is not None:
                self.loads.stop(runner.run, "machine crashed")
        self.runners = {}

    def restart(self) -> None:
        self.up, self.paused = True, False
        self.world.log(f"{self.name}: machine up again")
        self.boot()

    # heartbeats -------------------------------------------------------------------------------

    def _beat(self) -> None:
        self._beats += 1
        beat, sent = self._beats, self.mono()
        timeout = self.fence.request_timeout(self.plane.settings.heartbeat_interval, sent)
        self._in_flight = (beat, sent, sent + timeout)
        body = Heartbeat(
            self.node_id,
            cpu_load=0.1,
            memory_load=0.2,
            avg_latency_ms=2.0,
            instances=tuple(r.report(i) for i, r in self.runners.items()),
            standbys=tuple((s.id, self._newest(str(s.id))) for s in self.standby),
            fenced=self.fence.holding(),
            witnessing=self.witness.report(),
        )

        def arrived() -> None:
            self.plane.heartbeat(self.token_hash, body, answer)

        def answer(result: HeartbeatResult | TakeoverError, now: datetime) -> None:
            self.net.send(self.name, self.region, lambda: self._replied(beat, result, now))

        self.net.send(self.name, self.region, arrived)
        self.world.at(sent + timeout, lambda: self._timed_out(beat))

    def _timed_out(self, beat: int) -> None:
        if self.up and not self.paused and self._in_flight is not None and self._in_flight[0] == beat:
            self._in_flight = None
            self.step()

    def _replied(self, beat: int, result: HeartbeatResult | TakeoverError, server_time: datetime) -> None:
        if not self.up or self._in_flight is None or self._in_flight[0] != beat:
            return  # a duplicate, or an answer after the request gave up
        if self.paused:
            self._inbox = [(beat, result, server_time)]
            return
        _, sent, _ = self._in_flight
        self._in_flight = None
        self._fence_if_silent()
        if isinstance(result, HeartbeatResult):
            timings = self.plane.timings
            self.cp_clock.observe(server_time, sent, self.mono())
            offered = tuple(w for w, _ in result.witnesses)
            self.witness.heard(
                result.node.last_heartbeat_at, offered, timings.witness_lag, timings.witness_lease
            )
            if self.fence.acknowledged(
                sent, timings.fence_after, timings.fence_grace, timings.heartbeat_interval
            ):
                self.world.log(f"{self.name}: acknowledged again; no longer fenced")
            self._keepers.watch(self.fence.deadline)
            self._reconcile(result.desired)
        self.step()

    # reconcile --------------------------------------------------------------------------------

    def _reconcile(self, desired: DesiredState) -> None:
        wanted = {str(i.id): i for i in desired.run}
        release = {str(i.id): i.epoch for i in desired.release}
        self.standby = list(desired.standby)
        actions = plan(
            {i: d.epoch for i, d in wanted.items()},
            release,
            {i: Held(r.epoch, r.released) for i, r in self.runners.items()},
            self.busy,
        )
        for action in actions:
            runner = self.runners.get(action.instance_id)
            if runner is None:
                continue
            if action.act is Act.STOP:
                self._stop(self.runners.pop(action.instance_id), "no longer desired here")
            elif action.act is Act.HAND_OVER and action.instance_id not in self.busy:
                self._hand_over(runner)
            elif action.act is Act.RESUME:
                runner.released = False
                if self.fence.live() and runner.run is None:
                    self._place(action.instance_id, runner)
        self.wanted = wanted
        self._start_missing()

    def _hand_over(self, runner: Runner) -> None:
        """Stop, then a final snapshot, then report it stopped (jobs.hand_over)."""
        runner.released, runner.state = True, InstanceState.STOPPING
        self._stop(runner, "handed over")
        if runner.item.volume_id is not None:
            runner.state = InstanceState.STOPPED
            return
        runner.next_snapshot = self.mono()

    def _stop(self, runner: Runner, why: str) -> None:
        """As stop_all: the loop waits until the process has exited."""
        run, runner.run = runner.run, None
        if run is not None:
            self.loads.stop(run, why)

    def _fence_if_silent(self) -> None:
        if not self.fence.due():
            return
        self.world.log(f"{self.name}: no heartbeat acknowledged for fence_after; fencing")
        for runner in self.runners.values():
            self._stop(runner, "fenced")
        self.runners, self.wanted = {}, {}

    def _start_missing(self) -> None:
        if not self.fence.live():
            return
        for instance_id, item in self.wanted.items():
            if instance_id not in self.runners and instance_id not in self.busy:
                self._prepare(instance_id, item)

    def _prepare(self, instance_id: str, item: Instance) -> None:
        runner = self.runners[instance_id] = Runner(item)
        self.busy.add(instance_id)

        def placed() -> None:
            self.busy.discard(instance_id)
            if self.runners.get(instance_id) is runner:  # still the current one: not fenced meanwhile
                self._place(instance_id, runner)

        self._job(self.world.rng.uniform(0.05, 1.5), placed)

    def _job(self, takes: float, finish: Callable[[], None]) -> None:
        """A job on a worker thread: the loop takes its result at its next pass; a crash loses it."""
        life = self._lives

        def done() -> None:
            if self.up and self._lives == life:
                self._pending.append(finish)
                self.schedule(self.mono())

        self.world.after(takes, done)

    def _place(self, instance_id: str, runner: Runner) -> None:
        item = runner.item
        if item.volume_id is not None:
            volume = self.loads.volumes.setdefault(str(item.volume_id), Volume())
            if volume.epoch > item.epoch:
                runner.state, runner.error = InstanceState.FAILED, "volume held by a newer epoch"
                return
            volume.epoch = item.epoch
            self._launch(instance_id, runner, volume.value)
            self.loads.claimed(instance_id, item.epoch, self.models.keepers)
            return
        local = self.loads.disks.get((self.name, instance_id))
        if local is not None and local[0] == item.epoch:
            self._launch(instance_id, runner, local[1])
            return
        if self.loads.snapshots_failing:
            runner.state, runner.error = InstanceState.FAILED, "restore failed: the snapshot store is away"
            return
        candidates = restore_candidates(self.loads.refs(instance_id), item.epoch)
        if candidates:
            chosen = self.loads.snapshots[instance_id][candidates[0].id]
            runner.restored_from = chosen.ref.id
            self.loads.restored(item.name, instance_id, item.epoch, chosen.value)
            self._launch(instance_id, runner, chosen.value)
            return
        refusal = empty_start_refusal(item.recovery_point, [], item.start_empty)
        if refusal is not None:
            runner.state, runner.error = InstanceState.FAILED, refusal
            return
        self.loads.restored(item.name, instance_id, item.epoch, None)
        self._launch(instance_id, runner, 0)

    def _launch(self, instance_id: str, runner: Runner, value: int) -> None:
        item = runner.item
        volume = str(item.volume_id) if item.volume_id is not None else None
        if volume is None:
            self.loads.disks[(self.name, instance_id)] = (item.epoch, value)
        runner.run = Run(instance_id, item.name, self.name, item.epoch, self.mono(), value, volume)
        runner.state = InstanceState.RUNNING
        runner.next_snapshot = None if volume else self.mono() + self.models.snapshot_interval
        self.loads.start(runner.run)

    # snapshots --------------------------------------------------------------------------------

    def _snapshots(self) -> None:
        for instance_id, runner in self.runners.items():
            if runner.item.volume_id is not None or instance_id in self.busy:
                continue
            due = snapshot_due(self.mono(), runner.state, runner.released, runner.next_snapshot, None, None)
            if due is None:
                continue
            self.busy.add(instance_id)
            self._job(self.world.rng.uniform(0.1, 1.0), self._snapshotting(instance_id, runner))

    def _snapshotting(self, instance_id: str, runner: Runner) -> Callable[[], None]:
        taken = self.loads.disks[(self.name, instance_id)][1]  # the count as the job reads it

        def finish() -> None:
            self.busy.discard(instance_id)
            self._snapshot_taken(instance_id, runner, taken)

        return finish

    def _snapshot_taken(self, instance_id: str, runner: Runner, value: int) -> None:
        runner.next_snapshot = self.mono() + self.models.snapshot_interval
        if self.loads.snapshots_failing:
            runner.snapshot_error = "the snapshot store is away"
            return
        refs = self.loads.refs(instance_id)
        if self.models.cp_clock_stamps:
            floor = max((r.taken_at for r in refs if r.epoch == runner.epoch), default=None)
            ref = SnapshotRef.make(
                runner.epoch, stamp_after(self.cp_clock.now(), floor), f"{self._beats:06d}"
            )
            pruned = to_prune([*refs, ref], self.models.snapshots_kept, ref.id)
        else:  # before issue 27: this node's wall clock, and the oldest pruned whatever they are
            ref = SnapshotRef.make(runner.epoch, self.world.wall(self.wall_skew), f"{self._beats:06d}")
            pruned = sorted([*refs, ref])[: -self.models.snapshots_kept]
        self.loads.put(instance_id, Written(ref, value, self.world.now), [p.id for p in pruned])
        runner.snapshot_error, runner.last_snapshot = None, ref.id
        if runner.released and runner.state is InstanceState.STOPPING:
            runner.state, runner.next_snapshot = InstanceState.STOPPED, None

    def _newest(self, instance_id: str) -> str | None:
        candidates = restore_candidates(self.loads.refs(instance_id), 1 << 30)
        return candidates[0].id if candidates else None
