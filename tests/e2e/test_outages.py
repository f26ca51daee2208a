"""The data plane outlives the control plane (docs/rules.md, "Witnesses"; docs/FAULTS.md).

Real agents and workloads; the control plane, or its store, goes away for ten times
``fence_after``. The evidence is the workloads' own: a client asking each counter all along, and
each counter's count going on from where it was (a restarted or moved copy starts elsewhere).
"""

from __future__ import annotations

import re
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from takeover.localcluster import FAST_TIMINGS, LocalCluster, wait_until
from tests.e2e import netns
from tests.e2e.clock import stepped
from tests.e2e.serving import Askers, fleet, unchanged
from tests.pgserver import PostgresServer

pytestmark = pytest.mark.e2e
FENCE_AFTER = float(FAST_TIMINGS["TAKEOVER_FENCE_AFTER"])
OFFLINE_AFTER = float(FAST_TIMINGS["TAKEOVER_OFFLINE_AFTER"])


def test_the_control_plane_killed_for_ten_fences_stops_nothing_and_moves_nothing(tmp_path: Path) -> None:
    with LocalCluster(tmp_path) as cluster:
        cluster.start_control_plane()
        serving = fleet(cluster)
        cluster.witnessed()
        with Askers({n: str(s["endpoint"]) for n, s in serving.items()}).asking() as askers:
            port = cluster.kill_control_plane()
            gone = time.monotonic()
            time.sleep(10 * FENCE_AFTER)
            cluster.start_control_plane(port=port)
            back = time.monotonic()
            time.sleep(3 * OFFLINE_AFTER)  # the first cycles of the new leader: nothing is stale
        askers.kept_serving(gone, time.monotonic())
        assert back - gone >= 10 * FENCE_AFTER
        unchanged(cluster, serving)


@pytest.mark.postgres
def test_its_postgresql_down_for_ten_fences_stops_nothing_and_moves_nothing(tmp_path: Path) -> None:
    """The store crashed (every heartbeat refused), then back: /readyz said so meanwhile."""
    server = PostgresServer().start()
    try:
        store = server.create_database("takeover")
        with LocalCluster(tmp_path) as cluster:
            cluster.start_control_plane(env={"TAKEOVER_DATABASE_URL": store})
            serving = fleet(cluster)
            cluster.witnessed()
            with Askers({n: str(s["endpoint"]) for n, s in serving.items()}).asking() as askers:
                gone = time.monotonic()
                server.halt()
                time.sleep(FENCE_AFTER)
                assert cluster.api.get("/readyz", timeout=10).status_code == 503
                time.sleep(9 * FENCE_AFTER)
                server.resume()
                wait_until(lambda: cluster.api.get("/readyz").status_code == 200, 30, "ready again")
                time.sleep(3 * OFFLINE_AFTER)
            askers.kept_serving(gone, time.monotonic())
            unchanged(cluster, serving)
    finally:
        server.stop()


@pytest.mark.skipif(netns.available() is not None, reason=str(netns.available()))
def test_a_region_cut_off_in_its_network_namespace_keeps_running_and_nothing_moves(tmp_path: Path) -> None:
    """Four agents of region `cut` on a test host behind a veth: each one's witnesses are the
    other three. The link goes down for ten times ``fence_after``: they hear neither the control
    plane nor the two agents outside, only each other. A client inside the namespace asks
    their counters all along."""
    with netns.TestHost() as host, LocalCluster(tmp_path) as cluster:
        cluster.start_control_plane(host=host.host_ip)
        for name in ("c1", "c2", "c3", "c4"):
            cluster.start_agent(name, region="cut", wrapper=host.wrapper, NODE_HOST=host.ip)
        spec = {"command": [sys.executable, "-m", "takeover.examples.counter"], "env": {"HOST": "0.0.0.0"}}
        made = [cluster.api.post("/api/v1/instances", json={"name": f"web{i}", "spec": spec}) for i in (0, 1)]
        serving = {
            m.json()["name"]: wait_until(lambda: cluster.serving(m.json()["id"]), 30, "a counter to serve")  # noqa: B023
            for m in made
        }
        for name in ("m1", "m2"):  # outside: they reach the control plane all along
            cluster.start_agent(name, region="main", NODE_HOST=host.host_ip)
        cluster.witnessed()
        endpoints = {name: str(s["endpoint"]) for name, s in serving.items()}
        assert all(e.startswith(f"{host.ip}:") for e in endpoints.values())
        outage = 10 * FENCE_AFTER
        with Askers.inside(host.wrapper, endpoints, 2 + outage + 3 * OFFLINE_AFTER) as askers:
            time.sleep(2)
            host.cut()
            cut = time.monotonic()
            time.sleep(outage)
            host.heal()
            time.sleep(3 * OFFLINE_AFTER)
        askers.kept_serving(cut, cut + outage + 3 * OFFLINE_AFTER)
        unchanged(cluster, serving)


def test_the_control_plane_s_clock_stepped_ahead_and_back_declares_nothing_offline(tmp_path: Path) -> None:
    """Its wall clock (time.time, datetime.now) jumps ten times ``offline_after`` ahead, and
    later back: the issue measured healthy nodes declared offline one per cycle after a 2.2 s
    step. The leader times silence by its monotonic clock, which no step moves."""
    step = tmp_path / "clock-step"
    step.write_text("0")
    with LocalCluster(tmp_path) as cluster:
        cluster.start_control_plane(env={"PYTHONPATH": stepped(tmp_path), "CLOCK_STEP_FILE": str(step)})
        serving = fleet(cluster)
        cluster.witnessed()
        with Askers({n: str(s["endpoint"]) for n, s in serving.items()}).asking() as askers:
            started = time.monotonic()
            step.write_text(str(10 * OFFLINE_AFTER))
            time.sleep(4 * OFFLINE_AFTER)
            stamped = max(n["last_heartbeat_at"] for n in cluster.api.get("/api/v1/nodes").json())
            assert datetime.fromisoformat(stamped).timestamp() > time.time() + 5 * OFFLINE_AFTER  # it stepped
            step.write_text("0")
            time.sleep(4 * OFFLINE_AFTER)
        askers.kept_serving(started, time.monotonic())
        unchanged(cluster, serving)
        metrics = cluster.api.get("/metrics").text
        assert re.search(r"^takeover_nodes_marked_offline_total 0\.0$", metrics, re.MULTILINE), metrics
