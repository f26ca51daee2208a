"""The pool bench.scale drives: simulated nodes whose heartbeats reach the real store in group
commits, and the leader's real control loop beside them.

A node is a few fields. Its decisions are the agent's own ``plan()`` over each reply (start what is
desired, stop what moved); a start reports running ``restore`` seconds later, at once, as a real
agent reports a change. The store's change feed (PostgreSQL's LISTEN, as each replica holds one)
makes a node whose desired state changed heartbeat now, as a streamed agent is pushed its state.
Time is real: what is measured is what the store and the control plane's code cost.
"""

from __future__ import annotations

import heapq
import random
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID, uuid4

import structlog

from takeover.agent.plan import Act, Held, plan
from takeover.control.loop import ControlLoop
from takeover.domain.heartbeat import Heartbeat, InstanceReport
from takeover.domain.models import Instance, InstanceSpec, InstanceState, Node, NodeStatus, Role
from takeover.store import HeartbeatResult, Store
from takeover.store.instances import _values as instance_values
from takeover.store.nodes import _node_values
from takeover.store.tables import instances as instances_table
from takeover.store.tables import nodes as nodes_table
from takeover.store.tables import tokens as tokens_table

log = structlog.get_logger("bench.scale")


@dataclass
class SimNode:
    id: UUID
    token_hash: str
    running: dict[str, int] = field(default_factory=dict)  # instance id -> epoch
    starting: dict[str, int] = field(default_factory=dict)
    alive: bool = True

    def heartbeat(self, rng: random.Random) -> Heartbeat:
        reports = tuple(
            InstanceReport(UUID(i), epoch, InstanceState.RUNNING, port=20000)
            for i, epoch in self.running.items()
        )
        return Heartbeat(self.id, rng.uniform(0.1, 0.6), rng.uniform(0.2, 0.7), rng.uniform(1, 5), reports)


def seed(store: Store, count: int, per_node: int, capacity: int, regions: int) -> list[SimNode]:
    """``count`` online nodes, each running ``per_node`` instances, written in bulk."""
    now = datetime.now(UTC)
    rng = random.Random(count)
    pool = [SimNode(uuid4(), f"{i:064x}") for i in range(count)]
    node_rows = [
        {
            **_node_values(
                Node(
                    id=n.id,
                    name=f"node-{i:06d}",
                    region=f"region-{i % regions}",
                    base_url=f"http://{_host(i)}:7000",  # nothing calls it
                    max_instances=capacity,
                    current_instances=per_node,
                    status=NodeStatus.ONLINE,
                    health_score=round(rng.uniform(60, 100), 2),  # as heartbeats leave them
                    created_at=now,
                    last_heartbeat_at=now,
                )
            ),
            "api_token_hash": n.token_hash,
        }
        for i, n in enumerate(pool)
    ]
    token_rows = [
        {
            "id": uuid4(),
            "token_hash": n.token_hash,
            "role": Role.NODE.value,
            "subject": str(n.id),
            "node_id": n.id,
            "created_at": now,
        }
        for n in pool
    ]
    instance_rows = []
    for i, n in enumerate(pool):
        for k in range(per_node):
            instance = Instance(
                id=uuid4(),
                owner="bench",
                name=f"app-{i}-{k}",
                spec=InstanceSpec(("sleep", "infinity")),
                node_id=n.id,
                epoch=1,
                state=InstanceState.RUNNING,
                created_at=now,
                number=i * per_node + k + 1,
            )
            # the endpoint its first report would set: a seed without it makes that report write
            instance_rows.append({**instance_values(instance), "endpoint": f"{_host(i)}:20000"})
            n.running[str(instance.id)] = 1
    with store.engine.begin() as conn:
        for start in range(0, len(node_rows), 5000):
            conn.execute(nodes_table.insert(), node_rows[start : start + 5000])
            conn.execute(tokens_table.insert(), token_rows[start : start + 5000])
        for start in range(0, len(instance_rows), 5000):
            conn.execute(instances_table.insert(), instance_rows[start : start + 5000])
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("ANALYZE")
    return pool


def _host(i: int) -> str:
    return f"10.{i // 65536}.{i // 256 % 256}.{i % 256}"


class Pump:
    """Every node heartbeats each ``interval`` (spread evenly); one committer applies what has
    arrived in batches of at most ``max_batch``, as the API's group commit does in one process."""

    def __init__(
        self, store: Store, pool: list[SimNode], interval: float, max_batch: int, restore: float
    ) -> None:
        self.store = store
        self.nodes = {n.id: n for n in pool}
        self.interval = interval
        self.max_batch = max_batch
        self.restore = restore
        self.rng = random.Random(1)
        self.on_change = threading.Event()  # a batch changed a reported state: the leader's cue
        self.latencies: list[tuple[float, float]] = []  # (when acknowledged, seconds waited)
        self.batches: list[int] = []
        self.errors = 0
        self.started: dict[str, float] = {}  # instance id -> when its newest runner came up
        self._timers: list[tuple[float, int, str, UUID, str]] = []
        self._seq = 0
        self._arrived: list[tuple[float, UUID]] = []
        self._lock = threading.Condition()
        self._stop = threading.Event()
        begin = time.monotonic()
        for k, node in enumerate(pool):
            self._at(begin + interval * k / len(pool), "beat", node.id)
        self._threads = [
            threading.Thread(target=self._tick, daemon=True),
            threading.Thread(target=self._commit, daemon=True),
        ]

    def start(self) -> Pump:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
        for thread in self._threads:
            thread.join(timeout=30)

    def push(self, node_ids: Iterable[UUID]) -> None:
        """The change feed's callback: these nodes' desired state changed."""
        now = time.monotonic()
        with self._lock:
            self._arrived.extend((now, n) for n in node_ids if n in self.nodes and self.nodes[n].alive)
            self._lock.notify_all()

    def _at(self, when: float, kind: str, node_id: UUID, instance_id: str = "") -> None:
        self._seq += 1
        heapq.heappush(self._timers, (when, self._seq, kind, node_id, instance_id))

    def _tick(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            due: list[tuple[float, UUID]] = []
            with self._lock:
                while self._timers and self._timers[0][0] <= now:
                    when, _, kind, node_id, instance_id = heapq.heappop(self._timers)
                    node = self.nodes[node_id]
                    if not node.alive:
                        continue
                    if kind == "beat":
                        self._at(when + self.interval, "beat", node_id)
                    elif instance_id in node.starting:  # a start came up: report it at once
                        node.running[instance_id] = node.starting.pop(instance_id)
                        self.started[instance_id] = now
                    due.append((when, node_id))
                self._arrived.extend(due)
                if due:
                    self._lock.notify_all()
                wait = self._timers[0][0] - now if self._timers else 0.05
            self._stop.wait(min(max(wait, 0.0), 0.05))

    def _commit(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                while not self._arrived and not self._stop.is_set():
                    self._lock.wait(0.1)
                batch = self._arrived[: self.max_batch]
                del self._arrived[: self.max_batch]
                beats = [(self.nodes[n].token_hash, self.nodes[n].heartbeat(self.rng)) for _, n in batch]
            if not batch:
                continue
            try:
                results = self.store.nodes.apply_heartbeats(beats, datetime.now(UTC))
            except Exception as error:  # noqa: BLE001 - a bench counts what fails and goes on
                self.errors += len(batch)
                log.warning("batch failed", error=str(error))
                continue
            done = time.monotonic()
            self.batches.append(len(batch))
            self.latencies.extend((done, done - arrived) for arrived, _ in batch)
            with self._lock:
                for (_, node_id), result in zip(batch, results, strict=True):
                    if isinstance(result, HeartbeatResult):
                        self._act(self.nodes[node_id], result, done)
                    else:
                        self.errors += 1
            if any(isinstance(r, HeartbeatResult) and r.state_changes for r in results):
                self.on_change.set()

    def _act(self, node: SimNode, result: HeartbeatResult, now: float) -> None:
        """The agent's own plan over the reply; a start comes up ``restore`` seconds later."""
        desired = {str(i.id): i.epoch for i in result.desired.run}
        release = {str(i.id): i.epoch for i in result.desired.release}
        held = {i: Held(e) for i, e in node.running.items()}
        for action in plan(desired, release, held, set(node.starting)):
            if action.act is Act.START:
                node.starting[action.instance_id] = desired[action.instance_id]
                self._at(now + self.restore, "up", node.id, action.instance_id)
            elif action.act in (Act.STOP, Act.HAND_OVER):
                node.running.pop(action.instance_id, None)


@dataclass
class Leader:
    """The leader's control loop in a thread, run each ``interval`` or when the pump cues it,
    as ``takeover serve`` runs it (the API wakes it when a heartbeat changed a state)."""

    loop: ControlLoop
    cue: threading.Event
    interval: float
    cycles: list[tuple[float, float, int, int]] = field(default_factory=list)  # (began, secs, opened, steps)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Leader:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.cue.set()
        if self._thread is not None:
            self._thread.join(timeout=120)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.cue.clear()
            began, at = time.perf_counter(), time.monotonic()
            outcome = self.loop.run_cycle()
            opened = len(outcome.monitor.failovers) if outcome.monitor else 0
            steps = len(outcome.executor.steps) if outcome.executor else 0
            self.cycles.append((at, time.perf_counter() - began, opened, steps))
            if outcome.error:
                log.warning("cycle", error=outcome.error)
            self.cue.wait(self.interval)
