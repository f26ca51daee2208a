"""Every Prometheus metric of the control plane, named takeover_*, in a registry per app."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


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

    def watch_pool(self, read: Callable[[], dict[str, dict[str, int]]]) -> None:
        """Expose counts read from the store at scrape time (shared by every replica)."""
        self.registry.register(_PoolCollector(read))


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
