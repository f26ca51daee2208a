"""Faults beyond a clean kill, on real processes (docs/FAULTS.md has the table these fill).

Each test checks "at most one runner" from the workloads' own evidence (``alive-<epoch>``
rewritten every 50 ms, ``runs.log``) and "nothing acknowledged lost" from clients that record
every count the counter acknowledged, at its old address and at the one the API gives now.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from takeover.domain.errors import StoreUnavailable
from takeover.localcluster import FAST_TIMINGS, LocalCluster, wait_until
from takeover.settings import Settings
from takeover.store import make_engine
from tests.conftest import new_store_url
from tests.e2e.balancer import leads
from tests.e2e.clock import stepped
from tests.e2e.process import TAKEOVER, serve, threads_running
from tests.e2e.test_agent import first_placed, not_started_again_after_healing, old_stopped_before_new_started
from tests.e2e.test_replicas import _lease_epoch, control_plane
from tests.e2e.test_strategies import snapshotted, standby_synced

pytestmark = pytest.mark.e2e
TIMINGS = {"TAKEOVER_SYNC_INTERVAL": "0.5", "TAKEOVER_BRAKE_MIN_NODES": "10"}


@dataclass
class Ack:
    at: float
    count: int
    epoch: int


@dataclass
class Writers:
    """Clients counting all along: one at the address the instance had when they began, one at
    whatever address the API gives now. Every acknowledged count is recorded."""

    cluster: LocalCluster
    instance_id: str
    acks: list[Ack] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def _hit(self, client: httpx.Client, endpoint: str) -> bool:
        try:
            answer = client.get(f"http://{endpoint}/", timeout=1)
        except httpx.HTTPError:
            time.sleep(0.02)
            return False
        if answer.status_code != 200:
            time.sleep(0.02)
            return False
        body = answer.json()
        self.acks.append(Ack(time.time(), body["count"], body["epoch"]))
        return True

    def _endpoint(self) -> str | None:
        try:
            found = self.cluster.api.get(f"/api/v1/instances/{self.instance_id}")
        except httpx.HTTPError:
            return None
        return found.json().get("endpoint") if found.status_code == 200 else None

    def _at_old_address(self, endpoint: str) -> None:
        with httpx.Client() as client:
            while not self.stop.is_set():
                self._hit(client, endpoint)

    def _at_current_address(self) -> None:
        """As a client that asks the API where the instance is, every 0.2 s and after a failure."""
        endpoint, asked = None, 0.0
        with httpx.Client() as client:
            while not self.stop.is_set():
                if endpoint is None or time.monotonic() - asked > 0.2:
                    endpoint, asked = self._endpoint(), time.monotonic()
                if endpoint is None or not self._hit(client, endpoint):
                    endpoint = None
                    time.sleep(0.05)

    @contextmanager
    def running(self) -> Iterator[Writers]:
        endpoint = self.cluster.instance(self.instance_id)["endpoint"]
        threads = [
            threading.Thread(target=self._at_old_address, args=(endpoint,)),
            threading.Thread(target=self._at_current_address),
        ]
        with threads_running(threads, self.stop):
            yield self

    def none_acknowledged_by_the_old_copy_once_the_new_one_served(self) -> None:
        first_new = min(a.at for a in self.acks if a.epoch == 2)
        late = [a for a in self.acks if a.epoch == 1 and a.at >= first_new]
        assert late == [], f"{len(late)} counts acknowledged by epoch 1 after epoch 2 served"


@contextmanager
def hung(cluster: LocalCluster, name: str) -> Iterator[None]:
    """The agent stops (SIGSTOP: a deadlock, a D-state read, a stalled VM); its workloads do not."""
    agent = cluster.agents[name].process
    agent.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        agent.send_signal(signal.SIGCONT)


def serving_on_b(cluster: LocalCluster, instance_id: str) -> dict[str, Any]:
    moved: dict[str, Any] = wait_until(lambda: cluster.serving(instance_id, epoch=2), 30, "the copy on b")
    assert cluster.node_name(moved["node_id"]) == "b"
    return moved


@pytest.mark.parametrize("strategy", ["cpu_standby", "warm_pool"])
def test_a_hung_agent_s_process_is_stopped_by_its_keeper_before_the_copy_starts(
    tmp_path: Path, strategy: str
) -> None:
    with LocalCluster(tmp_path, timings=TIMINGS) as cluster:
        cluster.start_control_plane()
        cluster.start_agent("a")
        web = first_placed(cluster, "web", failover_strategy=strategy)
        cluster.start_agent("b")
        acked = [cluster.hit(web["id"]) for _ in range(3)]
        moment = time.time()
        snapshotted(cluster, web["id"], moment)
        if strategy == "warm_pool":
            standby_synced(cluster, web["id"], moment)
        writers = Writers(cluster, web["id"])
        with hung(cluster, "a"), writers.running():
            wait_until(lambda: len(writers.acks) > 20, 10, "counts acknowledged before the hang bites")
            serving_on_b(cluster, web["id"])
            wait_until(lambda: any(a.epoch == 2 for a in writers.acks), 10, "counts from the copy")
            old_stopped_before_new_started(cluster, web["id"])
        writers.none_acknowledged_by_the_old_copy_once_the_new_one_served()
        assert min(a.count for a in writers.acks if a.epoch == 2) > acked[-1]  # from the snapshot on
        not_started_again_after_healing(cluster, web["id"], cluster.instance(web["id"])["node_id"])


def test_a_hung_agent_s_runner_stops_writing_its_regional_volume_and_no_acknowledged_write_is_lost(
    tmp_path: Path,
) -> None:
    storage = tmp_path / "eu-storage"
    with LocalCluster(tmp_path, timings=TIMINGS) as cluster:
        cluster.start_control_plane()
        cluster.start_agent("a", region="eu", NODE_VOLUME_ROOT=str(storage))
        volume = cluster.api.post(
            "/api/v1/failover/regional-volume/create", json={"region": "eu", "size_gb": 1, "name": "data"}
        ).json()
        web = first_placed(cluster, "web", failover_strategy="regional_volume", volume_id=volume["volume_id"])
        cluster.start_agent("b", region="eu", NODE_VOLUME_ROOT=str(storage))
        writers = Writers(cluster, web["id"])
        with hung(cluster, "a"), writers.running():
            wait_until(lambda: len(writers.acks) > 20, 10, "counts acknowledged before the hang bites")
            serving_on_b(cluster, web["id"])
            wait_until(lambda: sum(a.epoch == 2 for a in writers.acks) > 20, 10, "counts from the copy")
            old_stopped_before_new_started(cluster, web["id"], on_volume=storage / volume["volume_id"])
        writers.none_acknowledged_by_the_old_copy_once_the_new_one_served()
        counts = [a.count for a in writers.acks]
        assert len(set(counts)) == len(counts), "two runners acknowledged the same count"
        assert cluster.hit(web["id"]) > max(counts)  # every acknowledged count is in the volume


@contextmanager
def starved(pid: int, share: float = 0.002) -> Iterator[None]:
    """The process alone (its threads, not its children) in a cgroup with ``share`` of a core."""
    root = Path("/sys/fs/cgroup/cpu")
    if not (root / "cpu.cfs_quota_us").exists() or not os.access(root, os.W_OK):
        pytest.skip("no writable cgroup v1 cpu controller here")
    home = next(
        line.split(":", 2)[2]
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        if ":cpu:" in line or ":cpu," in line or ",cpu:" in line
    )
    group = root / f"takeover-starved-{pid}"
    group.mkdir()
    try:
        (group / "cpu.cfs_period_us").write_text("1000000")
        (group / "cpu.cfs_quota_us").write_text(str(max(1000, int(share * 1_000_000))))
        (group / "cgroup.procs").write_text(str(pid))
        yield
    finally:  # with whatever it started meanwhile
        for member in (group / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):
                (root / home.lstrip("/") / "cgroup.procs").write_text(member)
        group.rmdir()


def runs(folder: Path) -> list[tuple[str, int, float]]:
    """runs.log: (start or stop, epoch, when)."""
    found = []
    for line in (folder / "runs.log").read_text().splitlines():
        event, epoch, at = line.split()
        found.append((event, int(epoch), float(at)))
    return found


def starts(folder: Path, epoch: int) -> int:
    return sum(1 for event, at_epoch, _ in runs(folder) if (event, at_epoch) == ("start", epoch))


def test_a_starved_agent_s_workload_is_stopped_before_its_copy_starts(tmp_path: Path) -> None:
    """0.2 % of a core: the agent's heartbeats come too late, the node is declared offline."""
    with LocalCluster(tmp_path, timings=TIMINGS) as cluster:
        cluster.start_control_plane()
        cluster.start_agent("a")
        web = first_placed(cluster, "web")
        cluster.start_agent("b")
        cluster.hit(web["id"])
        snapshotted(cluster, web["id"], time.time())
        writers = Writers(cluster, web["id"])
        with starved(cluster.agents["a"].process.pid), writers.running():
            serving_on_b(cluster, web["id"])
            wait_until(lambda: any(a.epoch == 2 for a in writers.acks), 10, "counts from the copy")
            time.sleep(2)  # still starved: its old runner must not come back
        old_stopped_before_new_started(cluster, web["id"])
        writers.none_acknowledged_by_the_old_copy_once_the_new_one_served()
        assert starts(cluster.agents["a"].data_dir / "workspaces" / web["id"], 1) == 1


def test_an_agent_starved_now_and_then_does_not_restart_its_workload_at_every_gap(tmp_path: Path) -> None:
    """Starved (0.1 % of a core) for 4 s out of every 5, with offline_after well above
    fence_after: the node stays online, its fence falls in the gaps, and its workload starts
    again only once the agent has been acknowledged, steadily, for a fence_after on end (its
    fenced heartbeats score 0: nothing else is placed there meanwhile, and with another node its
    instances would move there, health_degraded)."""
    timings = {**TIMINGS, "TAKEOVER_OFFLINE_AFTER": "8", "TAKEOVER_FENCE_MARGIN": "4"}
    with LocalCluster(tmp_path, timings=timings) as cluster:
        cluster.start_control_plane()
        agent = cluster.start_agent("a")
        web = first_placed(cluster, "web")
        for _ in range(4):
            with starved(agent.process.pid, share=0.001):
                time.sleep(4)
            time.sleep(1)
        during = agent_starts(cluster, "a")
        wait_until(lambda: cluster.serving(web["id"]), 30, "web to serve again once the node is steady")
        assert (cluster.node("a") or {}).get("status") == "online"  # never declared offline
        fenced = (cluster.root / "agent-a.log").read_text().count("; fencing")
        assert fenced >= 2  # the gaps did fence it
        assert during - 1 <= fenced // 2, f"{fenced} fences, started again {during - 1} times"


def agent_starts(cluster: LocalCluster, name: str) -> int:
    """How often the agent started a runner (a starved workload may die before it says so)."""
    log = (cluster.root / f"agent-{name}.log").read_text()
    return sum(log.count(what) for what in ("starting from the local workspace", "restoring "))


def test_a_clock_stepped_back_on_the_agent_keeps_its_recovery_point_moving(tmp_path: Path) -> None:
    """The agent's wall clock (time.time, datetime.now, through a sitecustomize) steps back 30 s:
    its new snapshots are still the newest, kept, restored after its node dies, and aged right."""
    with LocalCluster(tmp_path) as cluster:
        cluster.start_control_plane()
        cluster.start_agent("a", PYTHONPATH=stepped(tmp_path), CLOCK_STEP="-30", CLOCK_STEP_AFTER="3")
        web = first_placed(cluster, "web")
        cluster.start_agent("b")
        time.sleep(4)  # the step has happened
        acked = [cluster.hit(web["id"]) for _ in range(10)]
        moment = time.time()
        cluster.snapshot_after(web["id"], moment)  # stamped by the control plane's clock
        snapshots = cluster.snapshot_dir / "snapshots" / web["id"]
        recovery_point = cluster.instance(web["id"])["recovery_point"]
        assert (snapshots / f"{recovery_point}.json").exists()  # the one the agent reported, not pruned
        ages = metric(cluster, "takeover_instance_snapshot_age_seconds")
        assert 0 <= ages < 10, ages
        cluster.kill_agent("a")
        wait_until(lambda: cluster.serving(web["id"], epoch=2), 30, "web on b")
        assert cluster.hit(web["id"]) == acked[-1] + 1  # nothing acknowledged before the snapshot lost
        [failover] = cluster.ended_failovers(web["id"])
        assert 0 <= failover["backup_age_s"] < 10


def metric(cluster: LocalCluster, name: str) -> float:
    text = httpx.get(f"{cluster.url}/metrics", timeout=5).text
    found = re.search(rf"^{name}{{[^}}]*}} (\S+)$", text, re.MULTILINE)
    assert found, f"{name} not in /metrics"
    return float(found[1])


def no_agent_fenced(cluster: LocalCluster) -> None:
    for name in cluster.agents:
        log = (cluster.root / f"agent-{name}.log").read_text()
        assert "; fencing" not in log, f"agent {name} fenced"


@pytest.mark.postgres
def test_a_control_plane_session_paused_inside_a_transaction_stalls_no_heartbeat(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The issue's deterministic reproduction: a session that holds every node row and the lease
    and then sits idle, as a replica SIGSTOPped in the middle of a step. Opened as the control
    plane opens its sessions, the server ends it after half the lease ttl; the heartbeats waiting
    behind it go through before any agent's fence falls, and nothing fails over."""
    store = new_store_url("postgres", request, tmp_path)
    with LocalCluster(tmp_path) as cluster:
        cluster.start_control_plane(env={"TAKEOVER_DATABASE_URL": store})
        cluster.start_agent("a")
        web = first_placed(cluster, "web")
        cluster.start_agent("b")
        stall = Settings.model_validate(
            {k.removeprefix("TAKEOVER_").lower(): v for k, v in cluster.timings.items()}
        )
        paused = make_engine(store, stall_limit=stall.stall_limit)  # as main.open_store makes them
        try:
            with paused.connect() as conn:
                conn.execute(sa.text("SELECT 1 FROM nodes FOR UPDATE"))
                conn.execute(sa.text("SELECT 1 FROM leases FOR SHARE"))
                time.sleep(3 * float(cluster.timings["TAKEOVER_FENCE_AFTER"]))
                with pytest.raises(StoreUnavailable, match="idle-in-transaction"):
                    conn.execute(sa.text("SELECT 1"))
        finally:
            paused.dispose()
        no_agent_fenced(cluster)
        assert cluster.failovers(web["id"]) == []
        assert (cluster.serving(web["id"]) or {}).get("epoch") == 1


@pytest.mark.postgres
def test_a_leader_paused_past_its_lease_stalls_nothing_and_comes_back_a_follower(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """SIGSTOP of the leading replica, three times for twice the lease ttl: another replica
    leads within the ttl each time, no heartbeat waits for it (no agent fences), nothing fails
    over, and the woken one does not lead again with its old epoch. Heartbeats every 0.5 s: a
    heartbeat whose stream and HTTP retry both went to the paused replica is missed, and the
    next one must fit in fence_after (2 s)."""
    with control_plane(request, tmp_path, TAKEOVER_HEARTBEAT_INTERVAL="0.5") as (plane, cluster):
        web = cluster.create_counter("web")
        wait_until(lambda: cluster.serving(web["id"]), 30, "web to serve")
        ttl = float(FAST_TIMINGS["TAKEOVER_LEASE_TTL"])
        for _ in range(3):
            leader = wait_until(lambda: next((u for u in plane.replicas if leads(u)), None), 10, "a leader")
            epoch = _lease_epoch(plane.store)
            plane.replicas[leader].send_signal(signal.SIGSTOP)
            try:
                paused_at = time.monotonic()
                successor = wait_until(
                    lambda: next((u for u in plane.replicas if u != leader and leads(u)), None),  # noqa: B023
                    ttl + 5,
                    "another replica to lead",
                )
                assert time.monotonic() - paused_at < ttl + 3
                time.sleep(max(0.0, 2 * ttl - (time.monotonic() - paused_at)))
            finally:
                plane.replicas[leader].send_signal(signal.SIGCONT)
            assert _lease_epoch(plane.store) > epoch
            time.sleep(ttl)  # the woken one runs a cycle or two: as a follower
            assert successor != leader
        no_agent_fenced(cluster)
        assert cluster.failovers(web["id"]) == []
        assert cluster.serving(web["id"], epoch=1)


@contextmanager
def small_disk(path: Path, size: str = "8m") -> Iterator[Path]:
    """A tmpfs of ``size`` at ``path``: a real 'no space left on device' when filled."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=False)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    with contextlib.suppress(OSError), filler.open("wb") as out:
        while True:
            out.write(b"\0" * 65536)
            out.flush()
    return filler


def test_a_full_snapshot_store_is_reported_and_a_handover_never_stops_the_workload(tmp_path: Path) -> None:
    timings = {**TIMINGS, "TAKEOVER_STOP_TIMEOUT": "5"}
    with LocalCluster(tmp_path, timings=timings) as cluster, small_disk(cluster.snapshot_dir) as disk:
        cluster.start_control_plane()
        agent = cluster.start_agent("a")
        web = first_placed(cluster, "web")
        cluster.start_agent("b")
        cluster.hit(web["id"])
        cluster.snapshot_after(web["id"], time.time())
        filler = fill(disk)
        failing = wait_until(lambda: cluster.instance(web["id"])["snapshot_error"], 20, "the snapshot error")
        assert "No space left on device" in failing
        events = cluster.api.get("/api/v1/events", params={"kind": "instance.snapshot_failed"}).json()
        assert [e["subject"] for e in events] == [web["id"]]
        assert metric(cluster, "takeover_instance_snapshot_failing") == 1
        time.sleep(2)  # a few more failed snapshots
        assert list(disk.rglob("*.tmp")) == []  # nothing half-written left behind

        folder = agent.data_dir / "workspaces" / web["id"]
        writers = Writers(cluster, web["id"])
        with writers.running():
            manual = cluster.api.post("/api/v1/failovers", json={"instance_id": web["id"]}).json()
            (ended,) = cluster.ended_failovers(web["id"], timeout=30)
        assert ended["id"] == manual["id"]
        assert ended["status"] == "failed"
        assert "stop 1" not in (folder / "runs.log").read_text()  # it served all along
        assert {a.epoch for a in writers.acks} == {1}
        assert writers.acks[-1].at - writers.acks[0].at > 4  # acknowledged counts throughout
        assert time.time() - float((folder / "alive-1").read_text()) < 1

        filler.unlink()  # room again: the recovery point moves on
        wait_until(lambda: cluster.instance(web["id"])["snapshot_error"] is None, 20, "snapshots again")
        cluster.kill_agent("a")
        killed = time.time()
        opened = wait_until(
            lambda: next((f for f in cluster.failovers(web["id"]) if f["reason"] == "node_failure"), None),
            15,
            "the node failure's failover (not held back by the failed manual one)",
        )
        assert datetime.fromisoformat(opened["created_at"]).timestamp() - killed < 8
        wait_until(lambda: cluster.serving(web["id"], epoch=2), 30, "web on b")


def test_a_control_plane_pinned_to_its_store_refuses_to_start_on_a_new_empty_one(tmp_path: Path) -> None:
    """The SQLite data directory is removed; `takeover serve` started again with the store id it
    printed refuses, instead of starting a new, empty pool that every agent's token fails on."""
    data = tmp_path / "data"
    data.mkdir()
    with serve(data):
        pass
    banner = "".join(p.read_text() for p in data.glob("serve-*.log"))
    identity = re.search(r"TAKEOVER_STORE_ID=(\S+) refuses any other", banner)
    assert identity, banner
    shutil.rmtree(data)
    env = {**os.environ, "TAKEOVER_DATA_DIR": str(data), "TAKEOVER_STORE_ID": identity[1]}
    refused = subprocess.run(
        [TAKEOVER, "serve"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "refusing to start" in refused.stderr
    assert "does not exist" in refused.stderr
    assert not (data / "takeover.db").exists()
