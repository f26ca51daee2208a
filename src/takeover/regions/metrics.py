"""Document 004's metrics, under the takeover_multi_region_ prefix."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

SUCCEEDED, FAILED, REFUSED = 0, 1, 2  # refused: the caller's error (SQL), not the region's


class QueryTally:
    """One group's query counts per region: one lock and one add per query, read when scraped.

    Two prometheus Counter.inc calls per query cost half of the group's whole per-query work."""

    def __init__(self, regions: list[str]) -> None:
        self._lock = threading.Lock()
        self.counts = {region: [0, 0, 0] for region in regions}

    def add(self, region: str, outcome: int) -> None:
        with self._lock:
            self.counts[region][outcome] += 1

    def read(self) -> dict[str, list[int]]:
        with self._lock:
            return {region: list(counts) for region, counts in self.counts.items()}


class _QueryCollector(Collector):
    def __init__(self, tallies: dict[str, QueryTally]) -> None:
        self.tallies = tallies

    def collect(self) -> Iterator[CounterMetricFamily]:
        p, labels = "takeover_multi_region_", ["group", "region"]
        sent = CounterMetricFamily(p + "queries", "Queries sent, per region, once finished", labels=labels)
        ok = CounterMetricFamily(p + "queries_success", "Queries that succeeded", labels=labels)
        failed = CounterMetricFamily(p + "queries_failed", "Queries that failed on the region", labels=labels)
        for group, tally in self.tallies.items():
            for region, (succeeded, failures, refused) in tally.read().items():
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
        self.tallies: dict[str, QueryTally] = {}
        registry.register(_QueryCollector(self.tallies))
        self.replication_lag = Gauge(
            p + "replication_lag_seconds",
            "Replica lag at the last health check",
            ["group", "region"],
            registry=registry,
        )
        self.region_health = Gauge(
            p + "region_health", "1 healthy, 0 down", ["group", "region"], registry=registry
        )
