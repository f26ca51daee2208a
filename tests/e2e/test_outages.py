"""The data plane outlives the control plane (docs/rules.md, "Witnesses"; docs/FAULTS.md).

Real agents and workloads; the control plane, or its store, goes away for ten times
``fence_after``. The evidence is the workloads' own: a client asking each counter all along, and
each counter's count going on from where it was (a restarted or moved copy starts elsewhere).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from takeover.localcluster import FAST_TIMINGS, LocalCluster, wait_until
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
