"""One simulated run: a pool, its instances, faults from the seed, and the checks.

A run lasts until ``quiet`` seconds after its last fault; at the end every instance must run
again, on the node and at the epoch the store says, exactly once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from uuid import UUID

from takeover.control.services import Services
from takeover.control.values import InstanceDraft, NodeDraft, hash_token
from takeover.domain.errors import StoreUnavailable
from takeover.domain.failover import FailoverReason
from takeover.domain.models import InstanceSpec, InstanceState, Principal, Role, Volume
from takeover.metrics import Metrics
from takeover.settings import Settings
from takeover.sim.agent import SimAgent
from takeover.sim.controlplane import ControlPlane, Replica, SimClock
from takeover.sim.faults import BUSIEST, NODE_LEVEL, SCENARIOS, Fault, Planned, apply, draw, random_schedule
from takeover.sim.findings import Findings, Kind
from takeover.sim.network import Network
from takeover.sim.runners import Models
from takeover.sim.witness import SimWitness
from takeover.sim.workload import Workloads
from takeover.sim.world import World, seeded_ids
from takeover.store.invariants import violations

WARM_UP = 60.0  # seconds before the first fault: instances placed, running, snapshotted
USER = Principal(Role.USER, "sim")


@dataclass(frozen=True, slots=True)
class Options:
    scenario: str = "random"
    models: Models = field(default_factory=Models)
    epoch_guard: bool = True
    replicas: int = 0  # 0: drawn from the seed (1 to 3)
    quiet: float = 900.0  # seconds after the last fault until every instance must run again
    store_url: str = "sqlite://"
    timings: dict[str, float] = field(default_factory=dict)  # Settings fields; the defaults otherwise
    without: frozenset[Fault] = frozenset()  # faults the random scenario never draws


@dataclass
class Report:
    seed: int
    scenario: str
    faults: list[Planned]
    findings: Findings
    trace: list[str]
    events: int
    duration: float
    nodes: int
    instances: int
    failovers: int

    @property
    def digest(self) -> str:
        """The whole run in one value: two runs of a seed are the same run when it is equal."""
        return hashlib.sha256("\n".join(self.trace).encode()).hexdigest()[:16]


@dataclass
class Cluster:
    world: World
    plane: ControlPlane
    net: Network
    loads: Workloads
    agents: dict[str, SimAgent]
    replicas: int
    resolved: dict[str, str] = field(default_factory=dict)

    def resolve(self, target: str) -> str:
        """A fault's node: named, or the one running most instances when first asked."""
        if target != BUSIEST:
            return target
        if target not in self.resolved:
            running = {name: sum(1 for r in a.runners.values() if r.run) for name, a in self.agents.items()}
            self.resolved[target] = max(sorted(running), key=lambda name: running[name])
        return self.resolved[target]

    def leader(self) -> Replica | None:
        held = self.plane.store.coordinator.current("controllers")
        found = [r for r in self.plane.replicas if r.up and held is not None and r.name == held.holder]
        return found[0] if found else None

    def leader_clock_step(self, seconds: float) -> None:
        replica = self.leader() or next((r for r in self.plane.replicas if r.up), None)
        if replica is not None:
            replica.clock.skew += seconds

    def restart_replicas(self) -> None:
        for _ in range(self.replicas):
            self.plane.add_replica()


def simulate(seed: int, options: Options | None = None) -> Report:
    options = options or Options()
    if options.scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {options.scenario!r}: one of {', '.join(SCENARIOS)}")
    world = World(seed)
    with seeded_ids(world.rng):
        return _simulate(world, options)


def _simulate(world: World, options: Options) -> Report:
    rng = world.rng
    settings = Settings.model_validate(
        {"heartbeat_interval": 30.0, "fence_after": 75.0, "offline_after": 120.0, **options.timings}
    )
    plane = ControlPlane.open(world, settings, options.store_url)
    findings = Findings()
    loads = Workloads(world, findings, options.epoch_guard)
    net = Network(world)
    replicas = options.replicas or rng.randint(1, 3)
    cluster = Cluster(world, plane, net, loads, {}, replicas)
    services = Services(plane.store, SimClock(world), Metrics())
    regions = ["r1", "r2"]
    peers: dict[UUID, SimWitness] = {}
    for region in regions:
        for n in range(rng.randint(3, 5)):
            name = f"{region}-n{n + 1}"
            node, raw = services.register_node(NodeDraft(name, region, f"http://{name}:9000", 4))
            cluster.agents[name] = SimAgent(
                world, name, region, node.id, hash_token(raw), plane, net, loads, options.models, peers
            )
    for _ in range(replicas):
        plane.add_replica()
    count = rng.randint(3, 8)
    world.at(5.0, lambda: _create_instances(services, world, count, regions))
    faults = _schedule(cluster, options, settings)
    for planned in faults:
        apply(cluster, planned)
    for i in range(count):
        _write_every(world, loads, i)
    last = max((p.ends for p in faults), default=WARM_UP)
    until = last + options.quiet
    world.run(until, lambda: None)
    names = {a.node_id: a.name for a in cluster.agents.values()}
    _judge(cluster, findings, faults, names, settings)
    return Report(
        world.seed,
        options.scenario,
        faults,
        findings,
        world.trace,
        world.events,
        until,
        len(cluster.agents),
        count,
        len(plane.opened),
    )


def _create_instances(services: Services, world: World, count: int, regions: list[str]) -> None:
    rng = world.rng
    for i in range(count):
        kind = rng.choice(["cpu_standby", "warm_pool", "regional_volume"])
        region = rng.choice(regions)
        volume = None
        if kind == "regional_volume":
            created = services.store.volumes.create(
                Volume(UUID(int=rng.getrandbits(128)), USER.subject, f"vol{i}", region, 1, world.wall())
            )
            volume = created.id
        draft = InstanceDraft(f"app{i}", InstanceSpec(("app",)), region, True, kind, volume)
        instance = services.create_instance(USER, draft)
        world.log(f"created {instance.name} ({kind}) on node {instance.node_id} at epoch 1")


def _write_every(world: World, loads: Workloads, index: int) -> None:
    """Clients write to instance ``index`` once a second, wherever its runners are."""

    def write() -> None:
        for instance_id, runs in loads.runs.items():
            if runs[0].name == f"app{index}":
                loads.write(instance_id)
        world.after(1.0, write)

    world.at(WARM_UP / 2 + index * 0.01, write)


def _schedule(c: Cluster, options: Options, s: Settings) -> list[Planned]:
    rng, nodes, regions, scenario = c.world.rng, sorted(c.agents), ["r1", "r2"], options.scenario
    at = rng.uniform(WARM_UP + 60, WARM_UP + 240)
    if scenario == "random":
        return random_schedule(rng, nodes, regions, WARM_UP, WARM_UP + 900, options.without)
    if scenario == "cp-away":
        return [draw(rng, Fault.CP_DOWN, at, nodes, regions, rng.uniform(1.5, 4) * s.fence_after)]
    if scenario == "region-cut":
        return [draw(rng, Fault.REGION_CUT, at, nodes, regions, rng.uniform(1.5, 4) * s.offline_after)]
    if scenario == "replica-clock-step":
        seconds = rng.uniform(s.offline_after - s.heartbeat_interval, s.offline_after)  # some nodes, not all
        return [draw(rng, Fault.REPLICA_CLOCK, at, nodes, regions, seconds)]
    if scenario == "hung-agent":
        return [Planned(Fault.PAUSE, at, rng.uniform(1.5, 4) * s.offline_after, BUSIEST)]
    # agent-clock-step: the clock of the busiest node is stepped back, then the node crashes
    step = Planned(Fault.AGENT_CLOCK, at + 60, -rng.uniform(300, 3000), BUSIEST)
    return [step, Planned(Fault.CRASH, step.at + rng.uniform(100, 300), rng.uniform(200, 400), BUSIEST)]


def _judge(
    c: Cluster, findings: Findings, faults: list[Planned], names: dict[UUID, str], s: Settings
) -> None:
    """The checks that need the whole run: availability, the store's invariants, and that
    every instance runs again once the faults stopped."""
    now = c.world.now
    node_faults = [(c.resolve(p.target), p.at, p.ends) for p in faults if p.fault in NODE_LEVEL]

    def node_fault(node: str, since: float, until: float) -> bool:
        return any(n == node and at <= until and ends >= since for n, at, ends in node_faults)

    for runs in c.loads.runs.values():
        for run in runs:
            if run.stopped is None or run.why not in ("fenced", "its keeper: fence deadline passed"):
                continue
            faulty = node_fault(run.node, run.stopped - s.fence_after - s.heartbeat_interval, run.stopped)
            findings.check(
                Kind.KEPT_RUNNING,
                faulty,
                run.stopped,
                run.name,
                f"epoch {run.epoch} on {run.node} stopped ({run.why}) though the node itself was healthy",
            )
    automatic = (FailoverReason.NODE_FAILURE, FailoverReason.HEALTH_DEGRADED)
    for at, failover in c.plane.opened:
        node = names.get(failover.source_node_id) if failover.source_node_id else None
        if failover.reason in automatic and node is not None:
            findings.check(
                Kind.NO_NEEDLESS_FAILOVER,
                node_fault(node, at - 3 * s.offline_after, at),
                at,
                f"failover of {failover.instance_id}",
                f"opened ({failover.reason}) off {node}, a node that had no fault",
            )
    try:
        for problem in violations(c.plane.store.engine, settled=True):
            findings.check(Kind.STORE, False, now, "store", problem)
        findings.check(Kind.STORE, True, now, "store", "")
        instances = c.plane.store.instances.find()
    except StoreUnavailable:
        return
    for instance in instances:
        live = c.loads.live(str(instance.id))
        where = names.get(instance.node_id) if instance.node_id else None
        ok = (
            instance.state is InstanceState.RUNNING
            and len(live) == 1
            and (live[0].node, live[0].epoch) == (where, instance.epoch)
        )
        findings.check(
            Kind.SETTLES,
            ok,
            now,
            instance.name,
            f"{instance.state} at epoch {instance.epoch} on {where} in the store"
            f" ({instance.last_error or 'no error'}); runners: "
            + (", ".join(f"epoch {r.epoch} on {r.node}" for r in live) or "none"),
        )
