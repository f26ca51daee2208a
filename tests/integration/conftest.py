"""A PostgreSQL primary with two streaming replicas, and a group of three regions over it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from prometheus_client import CollectorRegistry

from takeover.regions import GroupConfig, MultiRegion, MultiRegionConfig, PolicyConfig, RegionConfig
from tests.pgcluster import PostgresCluster

READ = "SELECT qty FROM item WHERE code = %s"


@pytest.fixture
def cluster() -> Iterator[PostgresCluster]:
    c = PostgresCluster().start()
    with psycopg.connect(c.primary.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE item (code text PRIMARY KEY, qty int)")
        conn.execute("INSERT INTO item VALUES ('7530110', 3)")
        conn.execute("CREATE SEQUENCE s")
    c.wait_replicated()
    try:
        yield c
    finally:
        c.stop()


def regions(cluster: PostgresCluster, sqlalchemy: bool = False, **policy: Any) -> MultiRegion:
    """``sqlalchemy``: the regions are SQLAlchemy URLs (postgresql+psycopg) instead of psycopg dsns."""
    members = cluster.members
    config = MultiRegionConfig(
        groups=[
            GroupConfig(
                group_id="emp",
                regions=[
                    RegionConfig(
                        connection_id=m.name,
                        region=f"site-{n}",
                        priority=n,
                        dsn=None if sqlalchemy else m.dsn,
                        url=f"postgresql+psycopg://postgres@127.0.0.1:{m.port}/postgres"
                        if sqlalchemy
                        else None,
                        read_only=n > 1,
                    )
                    for n, m in enumerate(members, start=1)
                ],
                failover_policy=PolicyConfig(
                    **{
                        "max_failures": 1,
                        "health_check_interval": 100,
                        "failback_delay": 500,
                        "connect_timeout": 1000,
                        **policy,
                    }
                ),
            )
        ]
    )
    return MultiRegion(config, registry=CollectorRegistry())


def sample(r: MultiRegion, name: str, **labels: str) -> float | None:
    """One of the group "emp"'s metrics, as Prometheus would scrape it."""
    return r.metrics.registry.get_sample_value(f"takeover_multi_region_{name}", {"group": "emp", **labels})
