"""Each failover strategy end to end, with real agents and real workloads."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from takeover.domain.snapshots import SnapshotRef
from takeover.localcluster import ADMIN_TOKEN, TAKEOVER, LocalCluster, wait_until

pytestmark = pytest.mark.e2e
TIMINGS = {"TAKEOVER_SYNC_INTERVAL": "0.5", "TAKEOVER_BRAKE_MIN_NODES": "10"}


def cli(cluster: LocalCluster, *args: str) -> str:
    env = {**os.environ, "TAKEOVER_URL": cluster.url, "TAKEOVER_TOKEN": ADMIN_TOKEN, "COLUMNS": "250"}
    result = subprocess.run(
        [*TAKEOVER, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def serving_first(cluster: LocalCluster, name: str, **extra: Any) -> dict[str, Any]:
    inst = cluster.create_counter(name, **extra)
    served: dict[str, Any] = wait_until(lambda: cluster.serving(inst["id"]), 30, f"{name} to serve")
    return served


def snapshotted(cluster: LocalCluster, instance_id: str, moment: float) -> None:
    def newer() -> bool:
        snap = cluster.instance(instance_id)["last_snapshot"]
        return bool(snap) and SnapshotRef.parse(snap).taken_at.timestamp() > moment

    wait_until(newer, 20, "a snapshot after the last write")


def standby_synced(cluster: LocalCluster, instance_id: str, moment: float) -> dict[str, Any]:
    def synced() -> dict[str, Any] | None:
        inst = cluster.instance(instance_id)
        at = inst["standby_synced_at"]
        snap = inst["standby_snapshot"]
        fresh = snap and SnapshotRef.parse(snap).taken_at.timestamp() > moment
        return inst if at and fresh else None

    found: dict[str, Any] = wait_until(synced, 20, "the warm standby to hold the latest snapshot")
    return found


def test_warm_pool_promotes_the_standby_and_makes_a_new_one(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, timings=TIMINGS) as cluster:
        cluster.start_control_plane()
        cluster.start_agent("a")
        web = serving_first(cluster, "web")
        assert "web fails over with warm_pool" in cli(cluster, "failover", "strategy", web["id"], "warm_pool")
        cluster.start_agent("b")
        cluster.start_agent("c")
        acked = [cluster.hit(web["id"]) for _ in range(4)]
        moment = time.time()
        snapshotted(cluster, web["id"], moment)
        standby = standby_synced(cluster, web["id"], moment)["standby_node_id"]
        assert standby not in (None, web["node_id"])
        readiness = cluster.api.get(f"/api/v1/failover/readiness/{web['id']}").json()
        assert readiness["warm_pool_ready"] is True
        assert readiness["overall_ready"] is True
        assert "warm_pool: ready" in cli(cluster, "failover", "readiness", web["id"])
        assert "would try warm_pool; would succeed: True" in cli(
            cluster, "failover", "execute", web["id"], "--dry-run"
        )

        cluster.kill_agent("a")
        moved = wait_until(lambda: cluster.serving(web["id"], epoch=2), 30, "web on its standby")
        assert moved["node_id"] == standby
        assert cluster.hit(web["id"]) == acked[-1] + 1
        [failover] = cluster.ended_failovers(web["id"])
        assert [a["strategy"] for a in failover["attempt_log"]] == ["warm_pool"]
        assert failover["status"] == "completed"
        promoted_on = cluster.node_name(standby)
        assert "promoting the warm copy" in (tmp_path / f"agent-{promoted_on}.log").read_text()
        renewed = wait_until(
            lambda: (i := cluster.instance(web["id"]))["standby_node_id"] not in (None, standby) and i,
            20,
            "a new standby",
        )
        assert cluster.node_name(renewed["standby_node_id"]) in ("b", "c")


def test_a_warm_copy_is_promoted_from_what_it_holds_when_every_snapshot_is_refused(tmp_path: Path) -> None:
    """The store's manifests turn to garbage after the standby synced: it starts from its copy."""
    with LocalCluster(tmp_path, timings=TIMINGS) as cluster:
        cluster.start_control_plane()
        cluster.start_agent("a")
        web = serving_first(cluster, "web", failover_strategy="warm_pool")
        cluster.start_agent("b")
        acked = [cluster.hit(web["id"]) for _ in range(3)]
        moment = time.time()
        snapshotted(cluster, web["id"], moment)
        held = standby_synced(cluster, web["id"], moment)["standby_snapshot"]
        cluster.kill_agent("a")
        for manifest in (cluster.snapshot_dir / "snapshots" / web["id"]).glob("*.json"):
            manifest.write_bytes(b"garbage")
        moved = wait_until(lambda: cluster.serving(web["id"], epoch=2), 30, "web on its standby")
        assert cluster.node_name(moved["node_id"]) == "b"
        assert SnapshotRef.parse(moved["restored_from"]) >= SnapshotRef.parse(held)
        assert cluster.hit(web["id"]) == acked[-1] + 1  # every acknowledged request, nothing lost


def test_both_falls_back_to_a_snapshot_when_the_standby_dies_too(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, timings=TIMINGS) as cluster:
        cluster.start_control_plane()
        cluster.start_agent("a")
        web = serving_first(cluster, "web", failover_strategy="both")
        for name in ("b", "c"):
            cluster.start_agent(name)
        acked = [cluster.hit(web["id"]) for _ in range(3)]
        moment = time.time()
        snapshotted(cluster, web["id"], moment)
        standby = cluster.node_name(standby_synced(cluster, web["id"], moment)["standby_node_id"])
        assert standby is not None
        cluster.witnessed()  # a's witnesses: b and c; one of them dies with it, the other proves it
        cluster.kill_agent(standby)
        cluster.kill_agent("a")

        moved = wait_until(lambda: cluster.serving(web["id"], epoch=2), 40, "web on the last node")
        assert cluster.node_name(moved["node_id"]) == ({"b", "c"} - {standby}).pop()
        assert cluster.hit(web["id"]) == acked[-1] + 1
        [failover] = cluster.ended_failovers(web["id"])
        log = failover["attempt_log"]
        # The warm pool could not serve (its node stopped syncing, or died under the attempt);
        # then snapshot restores, possibly first onto the dead standby while it still looked
        # online (it is declared offline only offline_after after its last heartbeat).
        assert log[0]["strategy"] == "warm_pool"
        assert log[0]["error"]
        assert [a["strategy"] for a in log[1:]] == ["cpu_standby"] * (len(log) - 1)
        assert len(log) in (2, 3)
        assert failover["strategy"] == "both"


def test_a_regional_volume_keeps_every_write_made_before_the_kill(tmp_path: Path) -> None:
    eu_storage = tmp_path / "eu-storage"
    with LocalCluster(tmp_path, timings=TIMINGS, snapshot_interval=600) as cluster:
        cluster.start_control_plane()
        cluster.start_agent("eu-1", region="eu", NODE_VOLUME_ROOT=str(eu_storage))
        volume = cluster.api.post(
            "/api/v1/failover/regional-volume/create", json={"region": "eu", "size_gb": 1, "name": "data"}
        ).json()
        web = serving_first(
            cluster, "web", failover_strategy="regional_volume", volume_id=volume["volume_id"]
        )
        cluster.start_agent("us-1", region="us")  # healthier maybe, but in the wrong region
        cluster.start_agent("eu-2", region="eu", NODE_VOLUME_ROOT=str(eu_storage))
        acked = [cluster.hit(web["id"]) for _ in range(25)]  # no snapshot: the volume has them all
        assert (eu_storage / volume["volume_id"] / "count").read_text() == str(acked[-1])
        busy = cluster.api.delete(f"/api/v1/failover/regional-volume/{volume['volume_id']}")
        assert busy.status_code == 409

        cluster.kill_agent("eu-1")
        moved = wait_until(lambda: cluster.serving(web["id"], epoch=2), 30, "web on eu-2")
        assert cluster.node_name(moved["node_id"]) == "eu-2"
        assert cluster.hit(web["id"]) == acked[-1] + 1
        [failover] = cluster.ended_failovers(web["id"])
        assert [a["strategy"] for a in failover["attempt_log"]] == ["regional_volume"]

        cluster.start_agent("eu-1")  # back: move it home through document 002's volume failover
        wait_until(lambda: (cluster.node("eu-1") or {}).get("status") == "online", 20, "eu-1 back")
        moved_back = cluster.api.post(
            "/api/v1/failover/regional-volume/failover", json={"volume_id": volume["volume_id"]}, timeout=60
        ).json()
        assert moved_back["success"] is True, moved_back
        assert moved_back["region"] == "eu"
        assert cluster.node_name(cluster.instance(web["id"])["node_id"]) == "eu-1"
        assert f"{moved_back['ssh_host']}:{moved_back['ssh_port']}" == cluster.instance(web["id"])["endpoint"]
        assert cluster.hit(web["id"]) == acked[-1] + 2  # the live handover kept the last write too


def test_execute_answers_with_the_outcome_and_one_of_two_concurrent_calls_runs(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, timings=TIMINGS) as cluster:
        cluster.start_control_plane()
        cluster.start_agent("a")
        web = serving_first(cluster, "web")
        cluster.start_agent("b")
        cluster.hit(web["id"])
        snapshotted(cluster, web["id"], time.time())
        answers: list[httpx.Response] = []

        def execute() -> None:
            answers.append(
                cluster.api.post(
                    "/api/v1/failover/execute",
                    json={"machine_id": web["id"], "force_strategy": "cpu_standby"},
                    timeout=60,
                )
            )

        threads = [threading.Thread(target=execute) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = sorted(a.status_code for a in answers)
        assert codes == [200, 409], [a.text for a in answers]
        result = next(a for a in answers if a.status_code == 200).json()
        assert result["success"] is True
        assert result["strategy_attempted"] == "cpu_standby"
        assert result["strategy_succeeded"] == "cpu_standby"
        assert result["machine_id"] == web["id"]
        moved = cluster.instance(web["id"])
        assert f"{result['new_ssh_host']}:{result['new_ssh_port']}" == moved["endpoint"]
        assert result["cpu_standby_attempt_ms"] > 0
        assert result["warm_pool_attempt_ms"] == 0
        assert cluster.hit(web["id"]) == 2
