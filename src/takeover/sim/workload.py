"""The fake runtime and the workloads' own evidence.

Every runner's process is an interval of virtual time; every write a runner acknowledges is
counted. The checks read only this evidence, never the control plane's view: two intervals of
one instance that overlap are two runners, and a restore that holds less than the newest
snapshot written is acknowledged data lost.

Data: a runner on a local workspace counts its writes into the node's disk; a snapshot copies the
count; a restore starts from a snapshot's count. A runner on a regional volume keeps the count in
memory and writes it through to the volume (as a real application caches its state), so two
runners of one volume overwrite each other's acknowledged writes, unless the volume's epoch
(``.takeover-epoch``) refuses the older one's writes, as the counter example does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

from takeover.domain.snapshots import SnapshotRef
from takeover.sim.findings import Findings, Kind
from takeover.sim.world import World


@dataclass
class Run:
    """One runner's process of one instance at one epoch on one node."""

    instance: str
    name: str
    node: str
    epoch: int
    started: float
    value: int = 0  # a volume runner's in-memory count
    volume: str | None = None
    stopped: float | None = None
    why: str = ""  # what stopped it


@dataclass
class Written:
    """A snapshot that reached the store, as the truth knows it."""

    ref: SnapshotRef
    value: int
    at: float  # true time it was taken


@dataclass
class Volume:
    value: int = 0
    epoch: int = 0  # the newest epoch that started on it


@dataclass
class Workloads:
    world: World
    findings: Findings
    epoch_guard: bool = True  # runners refuse writes once a newer epoch holds their volume
    snapshots_failing: bool = False  # the snapshot store is away: puts and restores fail
    runs: dict[str, list[Run]] = field(default_factory=dict)
    disks: dict[tuple[str, str], tuple[int, int]] = field(
        default_factory=dict
    )  # (node, inst) -> epoch, count
    volumes: dict[str, Volume] = field(default_factory=dict)
    acked: dict[str, int] = field(default_factory=dict)  # volume instances: writes acknowledged
    snapshots: dict[str, dict[str, Written]] = field(default_factory=dict)  # present in the store
    written: dict[str, list[Written]] = field(default_factory=dict)  # every one that ever was

    def live(self, instance: str) -> list[Run]:
        return [r for r in self.runs.get(instance, []) if r.stopped is None]

    def start(self, run: Run) -> None:
        others = self.live(run.instance)
        self.findings.check(
            Kind.ONE_RUNNER,
            not others,
            self.world.now,
            run.name,
            f"epoch {run.epoch} started on {run.node} while "
            + ", ".join(f"epoch {o.epoch} runs on {o.node}" for o in others),
        )
        self.runs.setdefault(run.instance, []).append(run)
        self.world.log(f"{run.node}: {run.name} epoch {run.epoch} process started")

    def stop(self, run: Run, why: str) -> None:
        if run.stopped is None:
            run.stopped, run.why = self.world.now, why
            self.world.log(f"{run.node}: {run.name} epoch {run.epoch} process stopped ({why})")

    def write(self, instance: str) -> None:
        """Each live runner acknowledges one write (its clients reach it, wherever it is)."""
        for run in self.live(instance):
            if run.volume is None:
                epoch, count = self.disks[(run.node, instance)]
                self.disks[(run.node, instance)] = (epoch, count + 1)
                continue
            volume = self.volumes[run.volume]
            if self.epoch_guard and volume.epoch > run.epoch:
                continue  # refused: superseded, not acknowledged
            run.value += 1
            volume.value = run.value
            self.acked[instance] = self.acked.get(instance, 0) + 1
            self.findings.check(
                Kind.ACKED_KEPT,
                volume.value >= self.acked[instance],
                self.world.now,
                run.name,
                f"its volume holds {volume.value} writes, {self.acked[instance]} were acknowledged",
            )

    def restored(self, name: str, instance: str, epoch: int, value: int | None) -> None:
        """A runner at ``epoch`` starts from a snapshot holding ``value`` (None: none, empty)."""
        earlier = [w for w in self.written.get(instance, []) if w.ref.epoch < epoch]
        if not earlier:
            return
        if value is None:
            self.findings.check(Kind.NEVER_EMPTY, False, self.world.now, name, f"epoch {epoch} started empty")
            return
        last_epoch = max(w.ref.epoch for w in earlier)
        newest = max((w for w in earlier if w.ref.epoch == last_epoch), key=lambda w: w.at)
        self.findings.check(
            Kind.ACKED_KEPT,
            value >= newest.value,
            self.world.now,
            name,
            f"epoch {epoch} restored {value} writes; a snapshot taken at t={newest.at:.3f}s held "
            f"{newest.value} ({newest.ref.id}), and the store no longer has it",
        )

    def refs(self, instance: str) -> list[SnapshotRef]:
        """The store's listing of an instance's snapshots."""
        return sorted(w.ref for w in self.snapshots.get(instance, {}).values())

    def put(self, instance: str, taken: Written, pruned: list[str]) -> None:
        held = self.snapshots.setdefault(instance, {})
        held[taken.ref.id] = taken
        self.written.setdefault(instance, []).append(taken)
        for snapshot_id in pruned:
            held.pop(snapshot_id, None)

    def claimed(self, instance: str, epoch: int, keepers: bool) -> None:
        """A runner at ``epoch`` wrote its epoch into the volume: the keepers of older runners
        see it within their 100 ms watch and stop them."""
        if not keepers:
            return
        for run in self.live(instance):
            if run.epoch < epoch:
                self.world.after(0.1, partial(self.stop, run, "its keeper: a newer epoch holds the volume"))
