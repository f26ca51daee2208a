"""The data plane outlives the control plane (docs/rules.md, "Witnesses"; docs/FAULTS.md).

Real agents and workloads; the control plane, or its store, goes away for ten times
``fence_after``. The evidence is the workloads' own: a client asking each counter all along, and
each counter's count going on from where it was (a restarted or moved copy starts elsewhere).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from takeover.localcluster import FAST_TIMINGS, LocalCluster, wait_until
from tests.e2e.process import threads_running
from tests.pgserver import PostgresServer

pytestmark = pytest.mark.e2e
FENCE_AFTER = float(FAST_TIMINGS["TAKEOVER_FENCE_AFTER"])
OFFLINE_AFTER = float(FAST_TIMINGS["TAKEOVER_OFFLINE_AFTER"])


@dataclass
class Askers:
    """A client per instance asking its counter every 50 ms, at the address it had."""

    endpoints: dict[str, str]
    answered: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    missed: dict[str, list[float]] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def _ask(self, name: str, endpoint: str) -> None:
        with httpx.Client() as client:
            while not self.stop.is_set():
                try:
                    count = client.get(f"http://{endpoint}/", timeout=1).json()["count"]
                    self.answered.setdefault(name, []).append((time.monotonic(), count))
                except (httpx.HTTPError, ValueError, KeyError):
                    self.missed.setdefault(name, []).append(time.monotonic())
                self.stop.wait(0.05)

    @contextmanager
    def asking(self) -> Iterator[Askers]:
        threads = [threading.Thread(target=self._ask, args=item) for item in self.endpoints.items()]
        with threads_running(threads, self.stop):
            yield self

    def kept_serving(self, since: float, until: float) -> None:
        for name in self.endpoints:
            missed = [at for at in self.missed.get(name, []) if since <= at <= until]
            assert missed == [], f"{name} did not answer {len(missed)} times during the outage"
            counts = [c for at, c in self.answered[name] if since <= at <= until]
            assert len(counts) > (until - since) * 5, f"{name} answered only {len(counts)} times"
            assert counts == sorted(counts), f"{name}'s count went back: a new copy, or a restart"


def fleet(cluster: LocalCluster, count: int = 2) -> dict[str, dict[str, object]]:
    """Four agents (each has three witnesses, a quorum of two) and ``count`` counters on them."""
    for name in ("a", "b", "c", "d"):
        cluster.start_agent(name)
    made = {f"web{i}": cluster.create_counter(f"web{i}") for i in range(count)}
    return {
        name: wait_until(lambda: cluster.serving(str(m["id"])), 30, f"{name} to serve")  # noqa: B023
        for name, m in made.items()
    }


def unchanged(cluster: LocalCluster, serving: dict[str, dict[str, object]]) -> None:
    """Nothing failed over, nothing fenced, every instance still at epoch 1 where it was."""
    for name, before in serving.items():
        now = cluster.instance(str(before["id"]))
        assert (now["state"], now["epoch"], now["node_id"]) == ("running", 1, before["node_id"]), name
        assert cluster.failovers(str(before["id"])) == []
    for agent in cluster.agents:
        log = (cluster.root / f"agent-{agent}.log").read_text()
        assert "; fencing" not in log, f"agent {agent} fenced"


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
