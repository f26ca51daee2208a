"""Three `takeover serve` replicas on one PostgreSQL, behind a real HAProxy (deploy/haproxy.cfg).

Agents and clients talk only to HAProxy. The leader is SIGKILLed while a failover is in flight:
another replica takes the lease with a higher epoch and finishes that failover, once.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from takeover.localcluster import ADMIN_TOKEN, FAST_TIMINGS, LocalCluster, wait_until
from tests.conftest import new_store_url
from tests.e2e.balancer import HAPROXY, HAPROXY_CFG, haproxy, leads
from tests.e2e.process import start, stop
from tests.e2e.test_agent import snapshot_after

pytestmark = pytest.mark.postgres
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_the_shipped_haproxy_config_is_valid(tmp_path: Path) -> None:
    env = {**os.environ, "TAKEOVER_LISTEN": "127.0.0.1:8080"}
    env |= {f"TAKEOVER_REPLICA_{n}": f"127.0.0.1:{8080 + n}" for n in (1, 2, 3)}
    checked = subprocess.run(
        [HAPROXY, "-c", "-f", str(HAPROXY_CFG)], env=env, capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Configuration file is valid" in checked.stdout


def test_the_leader_dies_mid_failover_and_another_replica_finishes_it_once(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    store = new_store_url("postgres", request, tmp_path)
    replicas: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for n in (1, 2, 3):
            (tmp_path / f"replica{n}").mkdir()
            process, url = start(
                tmp_path / f"replica{n}",
                **FAST_TIMINGS,
                TAKEOVER_DATABASE_URL=store,
                TAKEOVER_REPLICA_ID=f"replica{n}",
                TAKEOVER_ADMIN_TOKEN=ADMIN_TOKEN,
            )
            replicas[url] = process
        with haproxy(list(replicas), tmp_path) as lb, LocalCluster(tmp_path / "pool") as cluster:
            cluster.url = lb
            cluster.api.base_url = httpx.URL(lb)
            for name in ("a", "b", "c"):
                cluster.start_agent(name)
            instance = cluster.create_counter("counter")
            first = wait_until(lambda: cluster.serving(instance["id"]), 30, "the counter to serve")
            acked = [cluster.hit(instance["id"]) for _ in range(5)]
            snapshot_after(cluster, instance["id"], time.time())  # what a node death keeps (the RPO)
            holder = cluster.node_name(first["node_id"])
            assert holder is not None

            written: list[str] = []  # API writes the balancer acknowledged, all through the kill
            stop_writing = threading.Event()

            def write() -> None:
                while not stop_writing.is_set():
                    try:
                        made = httpx.post(
                            lb + "/api/v1/tokens",
                            json={"role": "user", "subject": "w"},
                            headers=ADMIN,
                            timeout=5,
                        )
                    except httpx.HTTPError:
                        continue
                    if made.status_code == 201:
                        written.append(made.json()["id"])

            writer = threading.Thread(target=write)
            writer.start()
            try:
                cluster.kill_agent(holder)

                def in_flight() -> dict[str, Any] | None:
                    return next(iter(cluster.failovers(instance["id"])), None)

                seen = wait_until(in_flight, 30, "the failover to open")
                leader = wait_until(lambda: next((u for u in replicas if leads(u)), None), 10, "a leader")
                lease_epoch = _lease_epoch(store)
                replicas[leader].kill()
                replicas[leader].wait()
                killed_at = time.monotonic()
                successor = wait_until(
                    lambda: next((u for u in replicas if u != leader and leads(u)), None), 20, "a new leader"
                )
                took_over = time.monotonic() - killed_at
                done = wait_until(
                    lambda: cluster.serving(instance["id"], epoch=2), 60, "the counter to serve again"
                )
            finally:
                stop_writing.set()
                writer.join()

            assert seen["status"] != "completed", "the leader was killed after the failover, not during it"
            assert successor != leader
            assert _lease_epoch(store) > lease_epoch  # the new leader fences the old one
            assert took_over < 3 + 1 + 2, took_over  # lease ttl 3 s + 1 s, and 2 s of polling slack
            [failover] = cluster.failovers(instance["id"])  # completed once: no second failover
            assert failover["status"] == "completed"
            assert done["epoch"] == 2  # one placement: no double placement
            assert cluster.node_name(done["node_id"]) != holder
            assert cluster.hit(instance["id"]) == acked[-1] + 1  # no acknowledged count lost
            assert written, "no API write was acknowledged during the test"
            listed = {t["id"] for t in cluster.api.get("/api/v1/tokens").json()}
            assert set(written) <= listed  # no acknowledged API write lost
            running = [
                n["name"]
                for n in cluster.api.get("/api/v1/nodes").json()
                if n["status"] == "online" and instance["id"] in _runs(cluster, n["id"])
            ]
            assert running == [cluster.node_name(done["node_id"])]  # one runner

            # a token revoked through one replica is refused by every other one at once
            made = httpx.post(
                successor + "/api/v1/tokens", json={"role": "user", "subject": "r"}, headers=ADMIN
            )
            bearer = {"Authorization": f"Bearer {made.json()['token']}"}
            others = [u for u in replicas if u not in (leader, successor)]
            assert httpx.get(others[0] + "/api/v1/instances", headers=bearer).status_code == 200
            revoked = httpx.delete(f"{others[0]}/api/v1/tokens/{made.json()['id']}", headers=ADMIN)
            assert revoked.status_code == 204
            assert httpx.get(successor + "/api/v1/instances", headers=bearer).status_code == 401
    finally:
        for process in replicas.values():
            stop(process)


def _lease_epoch(store: str) -> int:
    engine = sa.create_engine(store)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(sa.text("SELECT epoch FROM leases WHERE name = 'controllers'")).scalar_one()
            )
    finally:
        engine.dispose()


def _runs(cluster: LocalCluster, node_id: str) -> set[str]:
    found = cluster.api.get("/api/v1/instances").json()
    return {i["id"] for i in found if i["node_id"] == node_id and i["state"] == "running"}
