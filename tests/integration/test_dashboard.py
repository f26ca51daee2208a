"""deploy/grafana/takeover.json against a real Prometheus scraping a real `takeover serve` (with real
agents that lose a node) and an application using takeover.regions over a real PostgreSQL that
loses its primary: every panel's every query returns data, on metrics takeover exports."""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import start_http_server

from takeover.localcluster import ADMIN_TOKEN, LocalCluster, free_port, wait_until
from takeover.regions import AllRegionsFailed, MultiRegion
from tests.integration.conftest import READ, regions, sample
from tests.pgcluster import PostgresCluster
from tests.prometheusserver import PROMETHEUS, PrometheusServer

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "takeover.json"
GPU = {"index": 0, "name": "NVIDIA RTX A4000", "memory_total_mb": 16376, "utilization": 0.4}


def panels() -> list[dict[str, Any]]:
    return [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]


def test_the_dashboard_is_well_formed() -> None:
    found = panels()
    assert len({p["id"] for p in found}) == len(found), "panel ids are unique"
    for panel in found:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]


@contextmanager
def application(r: MultiRegion) -> Iterator[str]:
    """An application's /metrics (takeover.regions) and a steady trickle of its queries."""
    r.start()  # health checks (replication lag, failback), as an application runs them
    port = free_port()
    server, _ = start_http_server(port, addr="127.0.0.1", registry=r.metrics.registry)
    stop = threading.Event()

    def query() -> None:
        while not stop.wait(0.05):
            with suppress(AllRegionsFailed):  # while the group moves; counted as failed queries
                r.query_with_failover("emp", READ, ["7530110"])

    worker = threading.Thread(target=query, daemon=True)
    worker.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        stop.set()
        worker.join(10)
        server.shutdown()


@contextmanager
def gpu_node(pool: LocalCluster) -> Iterator[None]:
    """A node on a GPU machine, heartbeating through the API as its agent would with NVML."""
    created = pool.api.post(
        "/api/v1/nodes",
        json={"name": "gpu-1", "region": "local", "base_url": "http://127.0.0.1:9", "max_instances": 1},
    )
    created.raise_for_status()
    node = created.json()
    # It takes no instances: its agent is not real, only its heartbeats are.
    pool.api.patch(f"/api/v1/nodes/{node['id']}", json={"status": "maintenance"}).raise_for_status()
    stop = threading.Event()

    def beat() -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {node['api_token']}"}) as client:
            while not stop.wait(0.5):
                body = {"cpu_load": 0.2, "memory_load": 0.3, "gpus": [GPU]}
                client.post(f"{pool.url}/api/v1/nodes/{node['id']}/heartbeat", json=body, timeout=5)

    worker = threading.Thread(target=beat, daemon=True)
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join(10)


def finite(prometheus: PrometheusServer, expr: str) -> bool:
    return any(math.isfinite(float(s["value"][1])) for s in prometheus.query(expr))


def test_every_panel_returns_data_from_metrics_takeover_exports(
    cluster: PostgresCluster, tmp_path: Path
) -> None:
    assert Path(PROMETHEUS).exists(), "Debian's prometheus is missing: ./dev test installs it"
    with (
        LocalCluster(tmp_path) as pool,
        regions(cluster) as r,
        application(r) as app,
    ):
        pool.start_control_plane()
        pool.start_agent("a")
        web = pool.create_counter("web")
        wait_until(lambda: pool.serving(web["id"]), 30, "web to serve")
        pool.snapshot_after(web["id"], 0)
        pool.start_agent("b")
        prometheus = PrometheusServer({"takeover": pool.url.removeprefix("http://"), "app": app}).start()
        try:
            with gpu_node(pool):
                wait_until(lambda: finite(prometheus, "takeover_heartbeats_total"), 30, "the first scrapes")
                assert pool.api.get("/api/v1/nodes/not-a-node").status_code == 422  # an API error
                pool.kill_agent("a")
                wait_until(lambda: pool.ended_failovers(web["id"]), 60, "web's failover")
                cluster.primary.kill()
                wait_until(
                    lambda: sample(r, "failovers_total", **{"from": "primary", "to": "replica1"}),
                    30,
                    "the region failover",
                )
                missing = {}
                for panel in panels():
                    for target in panel["targets"]:
                        try:
                            wait_until(partial(finite, prometheus, target["expr"]), 30, target["expr"])
                        except TimeoutError:
                            missing[panel["title"]] = target["expr"]
                assert missing == {}, "panels without data"
                exported = {s["metric"]["__name__"] for s in prometheus.query('{__name__=~"takeover_.+"}')}
        finally:
            prometheus.stop()
    used = {
        re.sub(r"_(bucket|count|sum)$", "", name)
        for panel in panels()
        for target in panel["targets"]
        for name in re.findall(r"\btakeover_[a-z_]+", target["expr"])
    }
    exported_families = {re.sub(r"_(bucket|count|sum)$", "", name) for name in exported}
    assert used <= exported_families, f"not exported: {used - exported_families}"
    assert ADMIN_TOKEN not in DASHBOARD.read_text()
