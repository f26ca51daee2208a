"""Faults drawn from the seed, and what each does to the simulated world.

Node-level faults (a crash, a paused or starved agent, a node cut off alone) may cost that node
its instances; the control plane's own faults (all replicas down, its store away, it or a region
cut off, its clock stepped, its leader paused or crashed) must not, once the failsafe issue
lands: the availability checks judge a stop or a failover by which kind was under way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from random import Random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from takeover.sim.controlplane import Replica
    from takeover.sim.run import Cluster

BUSIEST = "the busiest node"  # a target resolved when the fault begins


class Fault(StrEnum):
    CRASH = "node crash"
    PAUSE = "agent paused"
    STARVE = "agent starved"
    ISOLATE = "node cut off"
    AGENT_CLOCK = "agent clock step"
    CP_DOWN = "every replica down"
    STORE = "store outage"
    CP_CUT = "control plane cut off"
    REGION_CUT = "region cut off"
    REPLICA_CLOCK = "replica clock step"
    LEADER_PAUSE = "leader paused"
    LEADER_CRASH = "leader crashed"
    SNAPSHOTS = "snapshot store errors"


# The random draw, and one named fault each (run.py builds their schedules).
SCENARIOS = ("random", "cp-away", "hung-agent", "agent-clock-step", "region-cut", "replica-clock-step")
NODE_LEVEL = frozenset({Fault.CRASH, Fault.PAUSE, Fault.STARVE, Fault.ISOLATE})
_DURATIONS = {  # (shortest, longest) seconds; a step's size for the clock faults
    Fault.CRASH: (5, 400),
    Fault.PAUSE: (5, 400),
    Fault.STARVE: (30, 300),
    Fault.ISOLATE: (5, 400),
    Fault.AGENT_CLOCK: (-600, 600),
    Fault.CP_DOWN: (5, 400),
    Fault.STORE: (2, 200),
    Fault.CP_CUT: (5, 300),
    Fault.REGION_CUT: (5, 300),
    Fault.REPLICA_CLOCK: (-300, 300),
    Fault.LEADER_PAUSE: (5, 120),
    Fault.LEADER_CRASH: (5, 120),
    Fault.SNAPSHOTS: (10, 300),
}
_INSTANT = frozenset({Fault.AGENT_CLOCK, Fault.REPLICA_CLOCK})


@dataclass(frozen=True, slots=True)
class Planned:
    fault: Fault
    at: float
    size: float  # how long (a step's seconds for the clock faults)
    target: str = ""  # a node, a region or nothing

    @property
    def ends(self) -> float:
        return self.at if self.fault in _INSTANT else self.at + self.size

    def __str__(self) -> str:
        what = f"{self.fault} {self.target}".strip()
        size = f"by {self.size:+.1f}s" if self.fault in _INSTANT else f"for {self.size:.1f}s"
        return f"t={self.at:.1f}s {what} {size}"


def draw(
    rng: Random, kind: Fault, at: float, nodes: list[str], regions: list[str], size: float | None = None
) -> Planned:
    low, high = _DURATIONS[kind]
    target = ""
    if kind in NODE_LEVEL or kind is Fault.AGENT_CLOCK:
        target = rng.choice(nodes)
    elif kind is Fault.REGION_CUT:
        target = rng.choice(regions)
    return Planned(kind, at, rng.uniform(low, high) if size is None else size, target)


def random_schedule(
    rng: Random, nodes: list[str], regions: list[str], start: float, end: float, without: frozenset[Fault]
) -> list[Planned]:
    """One to four faults of any kind but ``without``, anywhere in [start, end]."""
    kinds = [f for f in Fault if f not in without]
    return sorted(
        (
            draw(rng, rng.choice(kinds), rng.uniform(start, end), nodes, regions)
            for _ in range(rng.randint(1, 4))
        ),
        key=lambda p: p.at,
    )


def apply(cluster: Cluster, planned: Planned) -> None:
    """Schedule the fault's start and end in the world."""
    world = cluster.world
    begin, end = _effects(cluster, planned)

    def started() -> None:
        begin()
        world.log(f"FAULT begins: {planned} ({cluster.resolve(planned.target)})")

    def ended() -> None:
        world.log(f"FAULT ends: {planned.fault} {cluster.resolve(planned.target)}")
        end()

    world.at(planned.at, started)
    if planned.fault not in _INSTANT:
        world.at(planned.ends, ended)


def _effects(c: Cluster, p: Planned) -> tuple[Callable[[], None], Callable[[], None]]:
    if p.fault in NODE_LEVEL or p.fault is Fault.AGENT_CLOCK:
        return _on_agent(c, p)
    if p.fault in (Fault.LEADER_PAUSE, Fault.LEADER_CRASH):
        return _on_leader(c, p)
    net, plane = c.net, c.plane

    def switch(on: bool) -> None:
        if p.fault is Fault.CP_DOWN and on:
            for replica in plane.replicas:
                if replica.up:
                    plane.crash(replica)
        elif p.fault is Fault.CP_DOWN:
            c.restart_replicas()
        elif p.fault is Fault.STORE:
            plane.store_down = on
        elif p.fault is Fault.CP_CUT:
            net.cp_cut = on
        elif p.fault is Fault.REGION_CUT:
            (net.cut_regions.add if on else net.cut_regions.discard)(p.target)
        elif p.fault is Fault.REPLICA_CLOCK and on:
            c.leader_clock_step(p.size)
        elif p.fault is Fault.SNAPSHOTS:
            c.loads.snapshots_failing = on

    return lambda: switch(True), lambda: switch(False)


def _on_agent(c: Cluster, p: Planned) -> tuple[Callable[[], None], Callable[[], None]]:
    """The target node is resolved when the fault begins (``BUSIEST``: the node running most)."""

    def switch(on: bool) -> None:
        agent = c.agents[c.resolve(p.target)]
        if p.fault is Fault.CRASH:
            agent.crash() if on else agent.restart()
        elif p.fault is Fault.PAUSE:
            agent.pause() if on else agent.resume()
        elif p.fault is Fault.STARVE:
            agent.late = c.world.rng.uniform(1, 60) if on else 0.0
        elif p.fault is Fault.ISOLATE:
            (c.net.cut_nodes.add if on else c.net.cut_nodes.discard)(agent.name)
        elif on:  # the agent's clock: a step, nothing to undo
            agent.wall_skew += p.size

    return lambda: switch(True), lambda: switch(False)


def _on_leader(c: Cluster, p: Planned) -> tuple[Callable[[], None], Callable[[], None]]:
    plane = c.plane
    held: list[Replica] = []

    def begin() -> None:
        leader = c.leader()
        if leader is None:
            return
        held.append(leader)
        if p.fault is Fault.LEADER_PAUSE:
            plane.pause(leader)
        else:
            plane.crash(leader)

    def end() -> None:
        for replica in held:
            if p.fault is Fault.LEADER_PAUSE:
                plane.resume(replica)
            else:
                plane.add_replica()  # the crashed one's process starts again: a new holder

    return begin, end
