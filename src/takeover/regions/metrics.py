"""Document 004's metrics, under the takeover_multi_region_ prefix."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from takeover.regions.inflight import InFlight


class _QueryCollector(Collector):
    """Query counts read from each group's InFlight when scraped: no Counter.inc per query."""

    def __init__(self, inflight: dict[str, InFlight]) -> None:
        self.inflight = inflight

    def collect(self) -> Iterator[CounterMetricFamily]:
        p, labels = "takeover_multi_region_", ["group", "region"]
        sent = CounterMetricFamily(p + "queries", "Queries sent, per region, once finished", labels=labels)
        ok = CounterMetricFamily(p + "queries_success", "Queries that succeeded", labels=labels)
        failed = CounterMetricFamily(p + "queries_failed", "Queries that failed on the region", labels=labels)
        for group, inflight in self.inflight.items():
            for region, (succeeded, failures, refused) in inflight.read().items():
                sent.add_metric([group, region], succeeded + failures + refused)
                ok.add_metric([group, region], succeeded)
                failed.add_metric([group, region], failures)
        yield from (sent, ok, failed)


class RegionMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        p = "takeover_multi_region_"
        self.failovers = Counter(
            p + "failovers_total", "Failovers", ["group", "from", "to"], registry=registry
        )
        self.failbacks = Counter(p + "failbacks_total", "Failbacks", ["group", "to"], registry=registry)
        self.current_region = Gauge(
            p + "current_region",
            "Priority of the group's current region (1 primary, 2 secondary, ...)",
            ["group", "region"],
            registry=registry,
        )
        self.inflight: dict[str, InFlight] = {}  # by group
        registry.register(_QueryCollector(self.inflight))
        self.replication_lag = Gauge(
            p + "replication_lag_seconds",
            "Replica lag at the last health check",
            ["group", "region"],
            registry=registry,
        )
        self.region_health = Gauge(
            p + "region_health", "1 healthy, 0 down", ["group", "region"], registry=registry
        )
