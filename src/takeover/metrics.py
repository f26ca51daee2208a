"""Every Prometheus metric of the control plane, named takeover_*, in a registry per app."""

from __future__ import annotations

from collections import Counter as Counter_
from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from takeover.domain.failover import Failover, FailoverReason, FailoverStatus
from takeover.domain.models import Gpu, Instance, InstanceState, Node
from takeover.domain.rentals import BILLED, Rental, spend
from takeover.domain.snapshots import SnapshotRef


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._pool_metrics(self.registry)
        self._failover_metrics(self.registry)
        self._control_metrics(self.registry)
        self._rent_metrics(self.registry)

    def _pool_metrics(self, r: CollectorRegistry) -> None:
        self.heartbeats = Counter("takeover_heartbeats_total", "Heartbeats applied", registry=r)
        self.heartbeat_batch = Histogram(
            "takeover_heartbeat_batch_size",
            "Heartbeats committed per transaction (group commit)",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000),
            registry=r,
        )
        self.heartbeat_gap = Histogram(
            "takeover_heartbeat_gap_seconds",
            "Time between a node's consecutive heartbeats as the store saw them: how late they come, "
            "to choose heartbeat_interval, fence_after and offline_after from",
            buckets=(0.1, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1, 1.25, 1.5, 2, 3, 5, 10, 30, 60, 120),
            registry=r,
        )
        self.streams = Gauge("takeover_agent_streams", "Agent streams this replica holds open", registry=r)
        self.streams_closed = Counter(
            "takeover_agent_streams_closed_total",
            "Agent streams this replica closed or refused, by close code (1013: accept rate)",
            ["code"],
            registry=r,
        )
        self.pushes = Counter(
            "takeover_desired_pushes_total", "Desired states pushed to agent streams", registry=r
        )
        self.nodes_marked_offline = Counter(
            "takeover_nodes_marked_offline_total", "Nodes declared offline", registry=r
        )
        self.nodes_vouched_for = Gauge(
            "takeover_nodes_vouched_for",
            "Nodes silent past offline_after whose fence their witnesses do not prove (not failed over)",
            registry=r,
        )

    def _failover_metrics(self, r: CollectorRegistry) -> None:
        self.failovers_opened = Counter(
            "takeover_failovers_opened_total", "Failovers opened", ["reason"], registry=r
        )
        self.failovers_finished = Counter(
            "takeover_failovers_finished_total", "Failovers ended", ["status"], registry=r
        )
        self.failovers_rate_limited = Counter(
            "takeover_failovers_rate_limited_total",
            "Automatic failovers deferred by the rate limit",
            registry=r,
        )
        self.region_paused = Gauge(
            "takeover_region_failovers_paused",
            "1 while automatic failovers of a region are paused by the mass-failure brake",
            ["region"],
            registry=r,
        )
        self.failover_seconds = Histogram(
            "takeover_failover_duration_seconds",
            "From a failover's intent to its end, by reason, the strategy of its last attempt, and status",
            ["reason", "strategy", "status"],
            buckets=(0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300, 600),
            registry=r,
        )

    def _control_metrics(self, r: CollectorRegistry) -> None:
        self.leader = Gauge("takeover_leader", "1 while this replica holds the leader lease", registry=r)
        self.leader_epoch = Gauge(
            "takeover_leader_epoch",
            "The fencing epoch of the lease this replica holds (grows at every change of leader)",
            registry=r,
        )
        self.http_seconds = Histogram(
            "takeover_http_request_duration_seconds",
            "API requests by method, route template and status class",
            ["method", "route", "status"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
            registry=r,
        )
        self.cycle_seconds = Histogram(
            "takeover_control_cycle_seconds", "Duration of one controller cycle", registry=r
        )

    def _rent_metrics(self, r: CollectorRegistry) -> None:
        self.rent_failures = Counter(
            "takeover_rent_failures_total",
            "Rentals that gave no usable machine, by why: gone, refused, unreachable, no_join, lost "
            "(shown exited or offline before it joined), no_agent (its onstart could not start the "
            "agent), no_offer, budget",
            ["reason"],
            registry=r,
        )
        self.rent_seconds = Histogram(
            "takeover_rent_seconds",
            "The marketplace's rent call, from intent to its answer",
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=r,
        )
        self.rent_join_seconds = Histogram(
            "takeover_rent_join_seconds",
            "From the rent call's answer to the rented machine's agent joining",
            buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600),
            registry=r,
        )

    def start_at_zero(self) -> None:
        """Every reason, status and strategy a failover can have, at 0 before the first one: a rate
        or quantile over these then shows the first failover instead of a series appearing at 1."""
        for reason in FailoverReason:
            self.failovers_opened.labels(reason.value)
            for status in (FailoverStatus.COMPLETED, FailoverStatus.FAILED):
                self.failovers_finished.labels(status.value)
                for strategy in STRATEGIES:
                    self.failover_seconds.labels(reason.value, strategy, status.value)

    def failover_opened(self, failover: Failover) -> None:
        self.failovers_opened.labels(failover.reason.value).inc()

    def failover_ended(self, failover: Failover) -> None:
        attempts = failover.attempts
        strategy = attempts[-1].strategy if attempts else (failover.strategy or "none")
        status = failover.status.value
        self.failovers_finished.labels(status).inc()
        total = failover.timings.get("total_ms")
        if total is None and failover.completed_at is not None:
            total = (failover.completed_at - failover.created_at).total_seconds() * 1000
        if total is not None:
            self.failover_seconds.labels(failover.reason.value, strategy, status).observe(total / 1000)

    def watch_pool(self, read: Callable[[], dict[str, dict[str, int]]]) -> None:
        """Expose counts read from the store at scrape time (shared by every replica)."""
        self.registry.register(_PoolCollector(read))

    def watch_rentals(self, read: Callable[[], list[Rental]]) -> None:
        """Machines rented and not given back, and what they cost per hour, read at scrape time."""
        self.registry.register(_RentalCollector(read))

    def watch_nodes(self, read: Callable[[], list[Node]], now: Callable[[], datetime]) -> None:
        """Each node's health score, heartbeat age and GPUs (as its agent last reported them)."""
        self.registry.register(_NodeCollector(read, now))

    def watch_snapshots(self, read: Callable[[], list[Instance]], now: Callable[[], datetime]) -> None:
        """How old each running instance's newest snapshot is: the data a failover now would lose."""
        self.registry.register(_SnapshotCollector(read, now))


STRATEGIES = ("warm_pool", "cpu_standby", "regional_volume")  # what an attempt can be

_GPU_GAUGES: tuple[tuple[str, str, Callable[[Gpu], float]], ...] = (
    ("utilization_ratio", "GPU utilization, 0..1", lambda g: g.utilization),
    ("memory_used_bytes", "GPU memory in use", lambda g: g.memory_used_mb * 2**20),
    ("memory_total_bytes", "GPU memory", lambda g: g.memory_total_mb * 2**20),
    ("temperature_celsius", "GPU temperature", lambda g: g.temperature_c),
)


class _NodeCollector(Collector):
    def __init__(self, read: Callable[[], list[Node]], now: Callable[[], datetime]) -> None:
        self._read, self._now = read, now

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pool, now = self._read(), self._now()
        labels = ["node", "region"]
        score = GaugeMetricFamily("takeover_node_health_score", "Health score, 0..100", labels=labels)
        age = GaugeMetricFamily(
            "takeover_node_heartbeat_age_seconds", "Since the node's last heartbeat", labels=labels
        )
        count = GaugeMetricFamily("takeover_node_gpus", "GPUs a node reports", labels=labels)
        for node in pool:
            score.add_metric([node.name, node.region], node.health_score)
            if node.last_heartbeat_at is not None:
                age.add_metric([node.name, node.region], (now - node.last_heartbeat_at).total_seconds())
            count.add_metric([node.name, node.region], len(node.gpus))
        yield from (score, age, count)
        for name, doc, value in _GPU_GAUGES:
            family = GaugeMetricFamily(f"takeover_node_gpu_{name}", doc, labels=["node", "gpu", "model"])
            for node in pool:
                for gpu in node.gpus:
                    family.add_metric([node.name, str(gpu.index), gpu.name], float(value(gpu)))
            yield family


class _SnapshotCollector(Collector):
    def __init__(self, read: Callable[[], list[Instance]], now: Callable[[], datetime]) -> None:
        self._read, self._now = read, now

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = self._now()
        family = GaugeMetricFamily(
            "takeover_instance_snapshot_age_seconds",
            "Age of each running instance's recovery point (its newest snapshot)",
            labels=["instance"],
        )
        failing = GaugeMetricFamily(
            "takeover_instance_snapshot_failing",
            "1 while an instance's runner cannot take snapshots (its recovery point stops moving)",
            labels=["instance"],
        )
        for instance in self._read():
            if instance.state is not InstanceState.RUNNING:
                continue
            failing.add_metric([instance.name], 1.0 if instance.snapshot_error else 0.0)
            if instance.recovery_point:
                try:
                    taken = SnapshotRef.parse(instance.recovery_point).taken_at
                except ValueError:
                    continue
                family.add_metric([instance.name], (now - taken).total_seconds())
        yield family
        yield failing


class _PoolCollector(Collector):
    def __init__(self, read: Callable[[], dict[str, dict[str, int]]]) -> None:
        self._read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = self._read()
        for name, label in (("nodes", "status"), ("instances", "state")):
            family = GaugeMetricFamily(f"takeover_{name}", f"{name.capitalize()} by {label}", labels=[label])
            for value, count in sorted(counts.get(name, {}).items()):
                family.add_metric([value], count)
            yield family


class _RentalCollector(Collector):
    def __init__(self, read: Callable[[], list[Rental]]) -> None:
        self._read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        billed = self._read()
        machines = GaugeMetricFamily(
            "takeover_rented_machines", "Rented machines not given back, by state", labels=["state"]
        )
        by_state = Counter_(r.state.value for r in billed)
        for state in sorted(s.value for s in BILLED):
            machines.add_metric([state], by_state.get(state, 0))
        yield machines
        yield GaugeMetricFamily(
            "takeover_rent_hourly_spend_dollars",
            "What the rented machines cost per hour, together (TAKEOVER_RENT_MAX_HOURLY bounds it)",
            value=spend(billed),
        )
