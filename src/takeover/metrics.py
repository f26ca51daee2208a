"""Every Prometheus metric of the control plane, named takeover_*, in a registry per app."""

from __future__ import annotations

from collections import Counter as Counter_
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from takeover.domain.models import Gpu, Node
from takeover.domain.rentals import BILLED, Rental, spend


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.heartbeats = Counter("takeover_heartbeats_total", "Heartbeats applied", registry=r)
        self.heartbeat_batch = Histogram(
            "takeover_heartbeat_batch_size",
            "Heartbeats committed per transaction (group commit)",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000),
            registry=r,
        )
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
        self.nodes_marked_offline = Counter(
            "takeover_nodes_marked_offline_total", "Nodes declared offline", registry=r
        )
        self.region_paused = Gauge(
            "takeover_region_failovers_paused",
            "1 while automatic failovers of a region are paused by the mass-failure brake",
            ["region"],
            registry=r,
        )
        self.leader = Gauge("takeover_leader", "1 while this replica holds the leader lease", registry=r)
        self.cycle_seconds = Histogram(
            "takeover_control_cycle_seconds", "Duration of one controller cycle", registry=r
        )
        self.rent_failures = Counter(
            "takeover_rent_failures_total",
            "Rentals that gave no usable machine, by why: gone, refused, unreachable, no_join, "
            "no_offer, budget",
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

    def watch_pool(self, read: Callable[[], dict[str, dict[str, int]]]) -> None:
        """Expose counts read from the store at scrape time (shared by every replica)."""
        self.registry.register(_PoolCollector(read))

    def watch_rentals(self, read: Callable[[], list[Rental]]) -> None:
        """Machines rented and not given back, and what they cost per hour, read at scrape time."""
        self.registry.register(_RentalCollector(read))

    def watch_gpus(self, read: Callable[[], list[Node]]) -> None:
        """Each node's GPUs as its agent last reported them (NVML), read at scrape time."""
        self.registry.register(_GpuCollector(read))


_GPU_GAUGES: tuple[tuple[str, str, Callable[[Gpu], float]], ...] = (
    ("utilization_ratio", "GPU utilization, 0..1", lambda g: g.utilization),
    ("memory_used_bytes", "GPU memory in use", lambda g: g.memory_used_mb * 2**20),
    ("memory_total_bytes", "GPU memory", lambda g: g.memory_total_mb * 2**20),
    ("temperature_celsius", "GPU temperature", lambda g: g.temperature_c),
)


class _GpuCollector(Collector):
    def __init__(self, read: Callable[[], list[Node]]) -> None:
        self._read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pool = self._read()
        count = GaugeMetricFamily("takeover_node_gpus", "GPUs a node reports", labels=["node", "region"])
        for node in pool:
            count.add_metric([node.name, node.region], len(node.gpus))
        yield count
        for name, doc, value in _GPU_GAUGES:
            family = GaugeMetricFamily(f"takeover_node_gpu_{name}", doc, labels=["node", "gpu", "model"])
            for node in pool:
                for gpu in node.gpus:
                    family.add_metric([node.name, str(gpu.index), gpu.name], float(value(gpu)))
            yield family


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
