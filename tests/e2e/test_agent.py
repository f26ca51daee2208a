"""Real agents running real workloads: node death, handover, partition, corruption, restarts."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from takeover.domain.snapshots import SnapshotRef
from takeover.localcluster import ADMIN_TOKEN, TAKEOVER, LocalCluster, free_port, wait_until
from tests.e2e import netns
from tests.e2e.tcpproxy import TcpProxy

pytestmark = pytest.mark.e2e


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path) as c:
        c.start_control_plane()
        yield c


def workloads(cluster: LocalCluster, name: str) -> list[psutil.Process]:
    return psutil.Process(cluster.agents[name].process.pid).children(recursive=True)


def gone(processes: list[psutil.Process]) -> bool:
    def dead(p: psutil.Process) -> bool:
        try:
            return p.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    return all(dead(p) for p in processes)


def workspace(cluster: LocalCluster, agent: str, instance_id: str) -> Path:
    return cluster.agents[agent].data_dir / "workspaces" / instance_id


def first_placed(cluster: LocalCluster, name: str, **extra: Any) -> dict[str, Any]:
    """An instance on the only agent so far ("a"), serving."""
    inst = cluster.create_counter(name, **extra)
    served: dict[str, Any] = wait_until(lambda: cluster.serving(inst["id"]), 30, f"{name} to serve")
    return served


def test_a_dead_node_s_instance_serves_elsewhere_from_its_last_snapshot(cluster: LocalCluster) -> None:
    node_death_restores_the_last_snapshot(cluster)


def test_snapshots_can_live_in_an_s3_bucket(tmp_path: Path) -> None:
    """The same node death with snapshots in a bucket of moto's server (a FAKE of Amazon S3)."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        s3 = {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": "k",
            "AWS_SECRET_ACCESS_KEY": "s",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        client = boto3.client(
            "s3",
            endpoint_url=s3["AWS_ENDPOINT_URL"],
            aws_access_key_id="k",
            aws_secret_access_key="s",
            region_name="us-east-1",
        )
        client.create_bucket(Bucket="snapshots")
        env = {**s3, "TAKEOVER_SNAPSHOT_STORE": "s3://snapshots/pool-1"}
        with LocalCluster(tmp_path, extra_env=env) as cluster:
            cluster.start_control_plane()
            node_death_restores_the_last_snapshot(cluster)
        keys = [o["Key"] for o in client.list_objects_v2(Bucket="snapshots")["Contents"]]
        assert any(k.startswith("pool-1/chunks/") for k in keys)
        assert any(k.startswith("pool-1/snapshots/") for k in keys)
    finally:
        server.stop()


def node_death_restores_the_last_snapshot(cluster: LocalCluster) -> None:
    cluster.start_agent("a")
    web = first_placed(cluster, "web")
    cluster.start_agent("b")
    acked = [cluster.hit(web["id"]) for _ in range(5)]
    assert acked == [1, 2, 3, 4, 5]
    cluster.snapshot_after(web["id"], time.time())
    children = workloads(cluster, "a")
    assert children, "the agent runs the workload as its child"

    cluster.kill_agent("a")
    wait_until(lambda: gone(children), 10, "the workload to die with its node")
    moved = wait_until(lambda: cluster.serving(web["id"], epoch=2), 30, "web to serve on b")

    assert cluster.node_name(moved["node_id"]) == "b"
    assert cluster.hit(web["id"]) == 6  # every acknowledged request was in the restored snapshot
    [failover] = cluster.ended_failovers(web["id"])
    assert (failover["reason"], failover["status"]) == ("node_failure", "completed")
    assert failover["backup_id"] == moved["restored_from"]
    assert 0 <= failover["backup_age_s"] < 10


def test_a_manual_failover_loses_no_acknowledged_request(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, snapshot_interval=600) as cluster:  # only the handover snapshot counts
        cluster.start_control_plane()
        cluster.start_agent("a")
        web = first_placed(cluster, "web")
        cluster.start_agent("b")
        acked: list[int] = []
        stop = threading.Event()

        def hammer() -> None:
            while not stop.is_set():
                try:
                    acked.append(cluster.hit(web["id"]))
                except (httpx.HTTPError, ValueError):
                    time.sleep(0.02)  # between the stop and the new runner: not acknowledged

        thread = threading.Thread(target=hammer)
        thread.start()
        wait_until(lambda: len(acked) >= 20, 10, "some acknowledged requests")
        response = cluster.api.post("/api/v1/failovers", json={"instance_id": web["id"]})
        assert response.status_code == 202, response.text
        wait_until(lambda: cluster.serving(web["id"], epoch=2), 30, "web to serve on b")
        wait_until(lambda: len(acked) >= 2 and acked[-1] > acked[-2] and len(acked) > 40, 10, "requests on b")
        stop.set()
        thread.join()

        assert len(set(acked)) == len(acked), "two runners counted from the same state"
        assert acked == sorted(acked)
        assert cluster.hit(web["id"]) > max(acked)
        [failover] = cluster.ended_failovers(web["id"])
        assert failover["status"] == "completed"
        assert failover["backup_id"] == cluster.instance(web["id"])["restored_from"]
        assert failover["backup_age_s"] == 0  # the handover snapshot, taken after the failover began


def test_a_partitioned_node_stops_its_copy_before_the_new_one_starts(cluster: LocalCluster) -> None:
    host, port = cluster.url.removeprefix("http://").split(":")
    proxy = TcpProxy((host, int(port)))
    try:
        cluster.start_agent("a", url=proxy.url)
        web = first_placed(cluster, "web")
        cluster.start_agent("b")
        cluster.hit(web["id"])
        cluster.snapshot_after(web["id"], time.time())

        proxy.cut()
        moved = wait_until(lambda: cluster.serving(web["id"], epoch=2), 30, "web to serve on b")
        assert cluster.node_name(moved["node_id"]) == "b"
        assert cluster.agents["a"].process.poll() is None, "a is cut off, not dead"

        old_stopped_before_new_started(cluster, web["id"])
        proxy.heal()
        not_started_again_after_healing(cluster, web["id"], moved["node_id"])
    finally:
        proxy.close()


def old_stopped_before_new_started(
    cluster: LocalCluster, instance_id: str, on_volume: Path | None = None
) -> None:
    """a's copy (epoch 1) stopped, and stays stopped, before b's (epoch 2) started: never two.
    ``on_volume``: both ran in that regional volume's directory."""
    old = on_volume or workspace(cluster, "a", instance_id)
    new = on_volume or workspace(cluster, "b", instance_id)
    last_alive_old = float((old / "alive-1").read_text())
    runs_old = (old / "runs.log").read_text().split("\n")
    started_new = next(
        float(line.split()[2])
        for line in (new / "runs.log").read_text().split("\n")
        if line.startswith("start 2 ")
    )
    stopped_old = next(
        float(line.split()[2]) for line in runs_old if line.startswith(("stop 1 ", "superseded 1 "))
    )
    assert last_alive_old < started_new
    assert stopped_old < started_new
    time.sleep(0.3)
    assert float((old / "alive-1").read_text()) == last_alive_old, "the old copy is still alive"


def not_started_again_after_healing(cluster: LocalCluster, instance_id: str, new_node: str) -> None:
    wait_until(lambda: (cluster.node("a") or {}).get("status") == "online", 20, "a to come back")
    time.sleep(2.5)  # a few heartbeats: it must not start its old copy again
    assert workloads(cluster, "a") == []
    after = cluster.instance(instance_id)
    assert (after["epoch"], after["node_id"], after["state"]) == (2, new_node, "running")


@pytest.mark.skipif(netns.available() is not None, reason=str(netns.available()))
def test_a_node_cut_off_in_its_network_namespace_stops_its_copy_before_the_new_one_starts(
    tmp_path: Path,
) -> None:
    """As the TCP-proxy partition above, with a real network: agent a on a test host behind a veth."""
    with netns.TestHost() as host, LocalCluster(tmp_path) as cluster:
        cluster.start_control_plane(host=host.host_ip)
        cluster.start_agent("a", wrapper=host.wrapper, NODE_HOST=host.ip)
        spec = {"command": [sys.executable, "-m", "takeover.examples.counter"], "env": {"HOST": "0.0.0.0"}}
        web = first_placed(cluster, "web", spec=spec)
        assert web["endpoint"].startswith(f"{host.ip}:")  # served from inside the namespace
        cluster.start_agent("b")
        assert [cluster.hit(web["id"]) for _ in range(2)] == [1, 2]
        cluster.snapshot_after(web["id"], time.time())

        host.cut()
        moved = wait_until(lambda: cluster.serving(web["id"], epoch=2), 30, "web to serve on b")
        assert cluster.node_name(moved["node_id"]) == "b"
        assert cluster.agents["a"].process.poll() is None, "a is cut off, not dead"
        old_stopped_before_new_started(cluster, web["id"])
        assert cluster.hit(web["id"]) == 3  # every acknowledged request survived the move
        host.heal()
        not_started_again_after_healing(cluster, web["id"], moved["node_id"])


def test_a_corrupt_snapshot_is_refused_and_the_previous_good_one_restored(cluster: LocalCluster) -> None:
    cluster.start_agent("a")
    web = first_placed(cluster, "web")
    cluster.start_agent("b")
    cluster.hit(web["id"])
    good = cluster.snapshot_after(web["id"], time.time())
    cluster.hit(web["id"])
    bad = cluster.snapshot_after(web["id"], time.time())
    cluster.kill_agent("a")

    manifest = cluster.snapshot_dir / "snapshots" / web["id"] / f"{bad}.json"
    from takeover.snapshots.manifest import Manifest

    decoded = Manifest.decode(manifest.read_bytes(), bad)
    [count_chunk] = next(f.chunks for f in decoded.files if f.path == "count")
    chunk = cluster.snapshot_dir / "chunks" / count_chunk[:2] / count_chunk
    chunk.write_bytes(b"not what was stored")

    moved = wait_until(lambda: cluster.serving(web["id"], epoch=2), 30, "web to serve on b")
    assert SnapshotRef.parse(moved["restored_from"]) <= SnapshotRef.parse(good)  # older than the corrupt one
    assert moved["restored_from"] != bad
    assert f"snapshot {bad}" in moved["last_error"]
    assert f"chunk {count_chunk[:12]} of count is damaged" in moved["last_error"]
    assert cluster.hit(web["id"]) == 2  # the count of the good snapshot (1), plus this request


def test_an_instance_whose_every_snapshot_is_refused_never_starts_empty(cluster: LocalCluster) -> None:
    """Garbage over every manifest: the failover fails, nothing runs; only an admin's choice starts it empty."""
    cluster.start_agent("a")
    web = first_placed(cluster, "web")
    cluster.start_agent("b")
    assert [cluster.hit(web["id"]) for _ in range(3)] == [1, 2, 3]
    cluster.snapshot_after(web["id"], time.time())
    cluster.kill_agent("a")
    manifests = list((cluster.snapshot_dir / "snapshots" / web["id"]).glob("*.json"))
    assert manifests
    for manifest in manifests:
        manifest.write_bytes(b"overwritten with garbage")

    [failed] = cluster.ended_failovers(web["id"], timeout=40)
    assert failed["status"] == "failed"
    assert "will not start empty" in failed["error"]
    assert "unreadable manifest" in failed["error"]
    stuck = cluster.instance(web["id"])
    assert stuck["state"] == "failed"
    assert stuck["endpoint"] is None
    assert stuck["recovery_point"] is not None
    assert workloads(cluster, "b") == []  # it never ran on b, not even briefly
    assert not workspace(cluster, "b", web["id"]).exists()

    cluster.start_agent("c")
    wait_until(lambda: (cluster.node("c") or {}).get("status") == "online", 20, "c to join")
    env = {**os.environ, "TAKEOVER_URL": cluster.url, "TAKEOVER_TOKEN": ADMIN_TOKEN}
    cli = subprocess.run(
        [*TAKEOVER, "failover", "start", web["id"], "--start-empty"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr
    restarted = wait_until(lambda: cluster.serving(web["id"], epoch=3), 30, "web to start empty on c")
    assert cluster.node_name(restarted["node_id"]) == "c"
    assert cluster.hit(web["id"]) == 1  # empty, as the admin accepted
    chosen = next(f for f in cluster.ended_failovers(web["id"]) if f["status"] == "completed")
    assert chosen["start_empty"] is True
    events = cluster.api.get("/api/v1/events", params={"kind": "instance.start_empty"}).json()
    assert [e["subject"] for e in events] == [web["id"]]


def test_a_target_that_dies_during_the_restore_is_replaced_by_the_next(cluster: LocalCluster) -> None:
    cluster.start_agent("a")
    web = first_placed(
        cluster,
        "web",
        spec={"command": [sys.executable, "-m", "takeover.examples.counter"], "env": {"STARTUP_DELAY": "4"}},
    )
    cluster.start_agent("b")
    cluster.start_agent("c")
    cluster.kill_agent("a")

    def placed() -> str | None:
        failovers = cluster.failovers(web["id"])
        return failovers[0]["target_node_id"] if failovers and failovers[0]["status"] == "restoring" else None

    first_target = cluster.node_name(wait_until(placed, 20, "the failover to place web"))
    assert first_target is not None
    cluster.kill_agent(first_target)  # still starting (STARTUP_DELAY): dies mid-restore

    moved = wait_until(lambda: cluster.serving(web["id"], epoch=3), 40, "web on the last node")
    [failover] = cluster.ended_failovers(web["id"])
    assert failover["status"] == "completed"
    assert failover["attempts"] == 2
    assert [cluster.node_name(n) for n in failover["tried_node_ids"]] == [
        first_target,
        cluster.node_name(moved["node_id"]),
    ]


def test_bad_commands_fail_with_the_reason(cluster: LocalCluster) -> None:
    cluster.start_agent("a", RESTART_BACKOFF="0.05")
    missing = cluster.api.post(
        "/api/v1/instances", json={"name": "typo", "spec": {"command": ["no-such-cmd"]}}
    ).json()
    crashing = cluster.api.post(
        "/api/v1/instances",
        json={"name": "crash", "spec": {"command": ["sh", "-c", "exit 3"]}, "failover_enabled": False},
    ).json()

    def failed(instance_id: str) -> dict[str, Any] | None:
        inst = cluster.instance(instance_id)
        return inst if inst["state"] == "failed" else None

    assert (
        wait_until(lambda: failed(missing["id"]), 20, "typo to fail")["last_error"]
        == "command not found: no-such-cmd"
    )
    crashed = wait_until(lambda: failed(crashing["id"]), 20, "crash to fail")
    assert crashed["last_error"] == "exited with code 3; gave up after 3 restart(s)"


def test_the_agent_ends_its_workloads_cleanly_on_sigterm(cluster: LocalCluster) -> None:
    cluster.start_agent("a")
    web = first_placed(cluster, "web")
    agent = cluster.agents["a"]
    agent.process.terminate()
    assert agent.process.wait(timeout=15) == 0
    runs = (workspace(cluster, "a", web["id"]) / "runs.log").read_text()
    assert "stop 1 " in runs


def test_the_agent_names_missing_settings(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAKEOVER_", "NODE_"))}
    result = subprocess.run(
        [*TAKEOVER, "agent"], env=env, capture_output=True, text=True, timeout=30, cwd=tmp_path, check=False
    )
    assert result.returncode != 0
    assert "TAKEOVER_URL" in result.stderr
    assert "Traceback" not in result.stderr
    env.update(TAKEOVER_URL="http://127.0.0.1:9", NODE_ID="not-a-uuid")
    result = subprocess.run(
        [*TAKEOVER, "agent"], env=env, capture_output=True, text=True, timeout=30, cwd=tmp_path, check=False
    )
    assert "NODE_ID" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_on_demand_snapshot_is_the_recovery_point(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, snapshot_interval=600) as cluster:  # no periodic snapshot in this test
        cluster.start_control_plane()
        cluster.start_agent("a")
        web = first_placed(cluster, "web")
        cluster.start_agent("b")
        assert [cluster.hit(web["id"]) for _ in range(3)] == [1, 2, 3]
        env = {**os.environ, "TAKEOVER_URL": cluster.url, "TAKEOVER_TOKEN": ADMIN_TOKEN, "COLUMNS": "250"}
        cli = subprocess.run(
            [*TAKEOVER, "instances", "snapshot", web["id"]],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert cli.returncode == 0, cli.stderr
        snapshot = cluster.instance(web["id"])["last_snapshot"]
        assert f"snapshot {snapshot} stored" in cli.stdout

        cluster.kill_agent("a")
        moved = wait_until(lambda: cluster.serving(web["id"], epoch=2), 30, "web to serve on b")
        assert moved["restored_from"] == snapshot
        assert cluster.hit(web["id"]) == 4


def test_a_restarted_agent_resumes_its_instances_from_the_local_workspace(tmp_path: Path) -> None:
    """An agent crash kills its workloads; back within offline_after, it runs them again in place."""
    timings = {"TAKEOVER_FENCE_AFTER": "8", "TAKEOVER_OFFLINE_AFTER": "12"}  # room for a restart
    with LocalCluster(tmp_path, timings=timings, snapshot_interval=600) as cluster:
        cluster.start_control_plane()
        cluster.start_agent("a")
        web = first_placed(cluster, "web")
        assert [cluster.hit(web["id"]) for _ in range(3)] == [1, 2, 3]  # never snapshotted
        children = workloads(cluster, "a")
        cluster.kill_agent("a")
        wait_until(lambda: gone(children), 10, "the workload to die with its agent")
        cluster.start_agent("a")
        back = wait_until(lambda: cluster.serving(web["id"]), 20, "web to serve again on a")
        assert (back["epoch"], back["node_id"]) == (1, web["node_id"])
        assert back["restored_from"] is None
        assert cluster.hit(web["id"]) == 4
        assert cluster.failovers(web["id"]) == []
