"""Document 004's metrics, under the takeover_multi_region_ prefix."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge


class RegionMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
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
        self.queries = Counter(
            p + "queries", "Queries sent, per region", ["group", "region"], registry=registry
        )
        self.queries_success = Counter(
            p + "queries_success", "Queries that succeeded", ["group", "region"], registry=registry
        )
        self.queries_failed = Counter(
            p + "queries_failed", "Queries that failed on the region", ["group", "region"], registry=registry
        )
        self.replication_lag = Gauge(
            p + "replication_lag_seconds",
            "Replica lag at the last health check",
            ["group", "region"],
            registry=registry,
        )
        self.region_health = Gauge(
            p + "region_health", "1 healthy, 0 down", ["group", "region"], registry=registry
        )
