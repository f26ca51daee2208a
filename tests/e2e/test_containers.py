"""Container instances with real agents and real Podman: one runner per instance, every strategy.

The workload is the counter image (takeover.examples.image), imported offline into a Podman
storage of each test's own. "Never two" is read from Podman's own event log: each container of
the instance, when it started and when it died.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from takeover.examples.image import COUNTER_IMAGE
from takeover.localcluster import ADMIN_TOKEN, LocalCluster, free_port, wait_until
from tests.e2e.tcpproxy import TcpProxy

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        shutil.which("podman") is None, reason="podman is not installed (./dev test installs it)"
    ),
]
TIMINGS = {"TAKEOVER_SYNC_INTERVAL": "0.5", "TAKEOVER_BRAKE_MIN_NODES": "10"}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path, timings=TIMINGS, containers=True) as c:
        c.start_control_plane()
        yield c


def serving(cluster: LocalCluster, name: str, **extra: Any) -> dict[str, Any]:
    inst = cluster.create_counter(name, **extra)
    served: dict[str, Any] = wait_until(lambda: cluster.serving(inst["id"]), 60, f"{name} to serve")
    return served


def lifetimes(cluster: LocalCluster, instance_id: str) -> list[tuple[str, float, float | None]]:
    """Each container of the instance: (name, began, died or None), in start order.

    Bounds that make "never two" strict: ``began`` is the ``init`` event (the runtime has created
    the container; its workload starts after it). ``died`` is when conmon saw the workload exit
    (State.FinishedAt, the exit file's time, up to a kernel tick early: ``_TICK`` is added), or
    the ``died`` event, which ``podman container cleanup`` writes later and a busy machine can
    delay past the next start; whichever is earlier.
    """
    out = cluster.podman(
        "events", "--stream=false", "--filter", f"label=takeover.instance={instance_id}", "--format", "json"
    )
    began: dict[str, float] = {}
    died: dict[str, float] = {}
    names: dict[str, str] = {}
    for line in out.splitlines():
        event = json.loads(line)
        at = datetime.fromisoformat(event["Time"]).timestamp()
        names[event["ID"]] = event["Name"]
        if event["Status"] == "init":
            began.setdefault(event["ID"], at)
        elif event["Status"] == "died":
            died.setdefault(event["ID"], min(at, exited_at(cluster, event["ID"]) or at))
    return sorted(((names[i], at, died.get(i)) for i, at in began.items()), key=lambda t: t[1])


_TICK = 0.01  # a file's mtime comes from the kernel's coarse clock


def exited_at(cluster: LocalCluster, container_id: str) -> float | None:
    """When conmon recorded the container's exit; None once it is removed or still running."""
    try:
        [state] = [c["State"] for c in json.loads(cluster.podman("inspect", container_id))]
    except subprocess.CalledProcessError:
        return None
    if state["Running"] or state["FinishedAt"].startswith("0001-"):
        return None
    return datetime.fromisoformat(state["FinishedAt"]).timestamp() + _TICK


def never_two(cluster: LocalCluster, instance_id: str) -> list[tuple[str, float, float | None]]:
    """Every container of the instance died before the next one started."""
    lives = lifetimes(cluster, instance_id)
    for (name, _, end), (later, began, _) in itertools.pairwise(lives):
        assert end is not None, f"{name} never died, and {later} started: {lives}"
        assert end < began, f"{name} still ran when {later} started: {lives}"
    return lives


def running_containers(cluster: LocalCluster, instance_id: str) -> list[str]:
    return cluster.podman(
        "ps", "--filter", f"label=takeover.instance={instance_id}", "--format", "{{.Names}}"
    ).split()


def detected_at(failover: dict[str, Any]) -> float:
    return datetime.fromisoformat(failover["created_at"]).timestamp()


def test_a_container_serves_with_its_image_pinned_and_its_output_shipped(cluster: LocalCluster) -> None:
    cluster.start_agent("a")
    web = serving(cluster, "web")
    spec = web["spec"]
    assert spec["image"] == "localhost/takeover-counter:1"
    assert spec["image_digest"].startswith("sha256:")  # pinned by the first runner
    assert spec["mount_path"] == "/workspace"
    assert [cluster.hit(web["id"]) for _ in range(3)] == [1, 2, 3]
    workspace = cluster.agents["a"].data_dir / "workspaces" / web["id"]
    assert (workspace / "count").read_text().strip() == "3"  # the mounted workspace holds the state
    logs = wait_until(
        lambda: "counter on port" in (t := cluster.api.get(f"/api/v1/instances/{web['id']}/logs").text) and t,
        20,
        "the container's output in the API",
    )
    assert f"epoch {web['epoch']}" in logs
    assert running_containers(cluster, web["id"]) == [f"takeover-{web['id']}-1"]


def test_a_killed_agent_s_container_is_stopped_by_its_keeper_before_the_copy_starts(
    cluster: LocalCluster,
) -> None:
    cluster.start_agent("a")
    web = serving(cluster, "web")
    cluster.start_agent("b")
    acked = [cluster.hit(web["id"]) for _ in range(3)]
    cluster.snapshot_after(web["id"], time.time())

    cluster.kill_agent("a")  # SIGKILL: the container is not its child and survives it, for now
    assert running_containers(cluster, web["id"]) == [f"takeover-{web['id']}-1"]
    moved = wait_until(lambda: cluster.serving(web["id"], epoch=2), 40, "web to serve on b")
    assert cluster.node_name(moved["node_id"]) == "b"
    assert cluster.hit(web["id"]) == acked[-1] + 1
    [failover] = cluster.ended_failovers(web["id"])
    lives = never_two(cluster, web["id"])
    assert [name for name, _, _ in lives] == [f"takeover-{web['id']}-1", f"takeover-{web['id']}-2"]
    first_died = lives[0][2]
    assert first_died is not None
    assert first_died < detected_at(failover), "stopped before offline_after"
    assert running_containers(cluster, web["id"]) == [f"takeover-{web['id']}-2"]


# Room for an agent restart on a busy machine before its old life's fence deadline passes.
SLOW_FENCE = {
    **TIMINGS,
    "TAKEOVER_FENCE_AFTER": "8",
    "TAKEOVER_FENCE_MARGIN": "1",
    "TAKEOVER_OFFLINE_AFTER": "10",
}


def test_a_restarted_agent_adopts_its_running_container_instead_of_starting_a_second(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, timings=SLOW_FENCE, containers=True) as cluster:
        cluster.start_control_plane()
        adopts(cluster)


def adopts(cluster: LocalCluster) -> None:
    cluster.start_agent("a")
    web = serving(cluster, "web")
    assert cluster.hit(web["id"]) == 1
    cluster.kill_agent("a")
    cluster.start_agent("a")  # back within fence_after: the keeper has not stopped it
    time.sleep(9)  # past the old life's fence deadline: the new life renews it
    inst = cluster.instance(web["id"])
    assert (inst["epoch"], inst["state"], inst["node_id"]) == (1, "running", web["node_id"])
    assert cluster.hit(web["id"]) == 2
    assert [name for name, _, died in lifetimes(cluster, web["id"])] == [f"takeover-{web['id']}-1"]
    log = (cluster.root / "agent-a.log").read_text()
    assert "adopted a container from an earlier life" in log

    cluster.podman("kill", f"takeover-{web['id']}-1")  # a crash of the adopted one: restarted as any
    wait_until(lambda: len(lifetimes(cluster, web["id"])) == 2, 20, "the restart")
    wait_until(lambda: cluster.serving(web["id"]), 20, "web to serve again")
    assert cluster.hit(web["id"]) == 3
    assert cluster.instance(web["id"])["epoch"] == 1
    never_two(cluster, web["id"])


def test_a_restarted_agent_removes_a_container_its_instance_no_longer_wants(cluster: LocalCluster) -> None:
    cluster.start_agent("a")
    web = serving(cluster, "web")
    cluster.kill_agent("a")
    assert cluster.api.delete(f"/api/v1/instances/{web['id']}").status_code == 204
    cluster.start_agent("a")
    wait_until(
        lambda: cluster.podman("ps", "-a", "--filter", f"label=takeover.instance={web['id']}", "-q") == "",
        20,
        "the orphan to be removed",
    )
    assert "removing a container from an earlier life" in (cluster.root / "agent-a.log").read_text()


def test_a_partitioned_agent_stops_its_container_before_the_copy_starts(cluster: LocalCluster) -> None:
    host, port = cluster.url.removeprefix("http://").split(":")
    proxy = TcpProxy((host, int(port)))
    try:
        cluster.start_agent("a", url=proxy.url)
        web = serving(cluster, "web")
        cluster.start_agent("b")
        acked = [cluster.hit(web["id"]) for _ in range(2)]
        cluster.snapshot_after(web["id"], time.time())

        proxy.cut()
        moved = wait_until(lambda: cluster.serving(web["id"], epoch=2), 40, "web to serve on b")
        assert cluster.node_name(moved["node_id"]) == "b"
        assert cluster.agents["a"].process.poll() is None, "a is cut off, not dead"
        assert cluster.hit(web["id"]) == acked[-1] + 1
        [failover] = cluster.ended_failovers(web["id"])
        lives = never_two(cluster, web["id"])
        first_died = lives[0][2]
        assert first_died is not None
        assert first_died < detected_at(failover)

        proxy.heal()
        wait_until(lambda: (cluster.node("a") or {}).get("status") == "online", 20, "a to come back")
        time.sleep(2.5)  # a few heartbeats: it must not start its old copy again
        assert running_containers(cluster, web["id"]) == [f"takeover-{web['id']}-2"]
        assert len(never_two(cluster, web["id"])) == 2
    finally:
        proxy.close()


def test_a_container_that_exits_at_once_fails_with_its_last_output(cluster: LocalCluster) -> None:
    cluster.start_agent("a", RESTART_BACKOFF="0.2")
    spec = {"image": "localhost/takeover-counter:1", "command": ["sh", "-c", "echo no config found; exit 3"]}
    inst = cluster.api.post("/api/v1/instances", json={"name": "bad", "spec": spec}).json()
    failed = wait_until(
        lambda: (i := cluster.instance(inst["id"]))["state"] == "failed" and i,
        30,
        "the crash loop to give up",
    )
    assert "exited with code 3; gave up after 3 restart(s)" in failed["last_error"]
    assert "no config found" in failed["last_error"]
    assert len(lifetimes(cluster, inst["id"])) == 4


def test_a_node_that_cannot_get_the_image_is_a_clear_attempt_error(cluster: LocalCluster) -> None:
    cluster.start_agent("a")
    web = serving(cluster, "web")
    empty = cluster.root / "empty-storage"
    options = cluster.extra_env["NODE_CONTAINER_OPTIONS"].split()
    options[options.index("--root") + 1] = str(empty)  # a node without the image, and no registry
    cluster.start_agent("b", NODE_CONTAINER_OPTIONS=" ".join(options))
    cluster.snapshot_after(web["id"], time.time())
    cluster.kill_agent("a")
    [failover] = cluster.ended_failovers(web["id"], timeout=60)
    assert failover["status"] == "failed"
    errors = " ".join(str(a.get("error")) for a in failover["attempt_log"])
    assert "could not be pulled" in errors
    assert web["spec"]["image_digest"] in errors
    cluster.start_agent("c")
    retried = cluster.api.post("/api/v1/failovers", json={"instance_id": web["id"]})
    assert retried.status_code == 202, retried.text
    moved = wait_until(lambda: cluster.serving(web["id"], epoch=3), 40, "web to serve on c")
    assert cluster.node_name(moved["node_id"]) == "c"


@pytest.mark.parametrize("strategy", ["cpu_standby", "warm_pool", "both", "regional_volume"])
def test_every_strategy_moves_a_container_instance_with_its_data(tmp_path: Path, strategy: str) -> None:
    storage = tmp_path / "region-storage"
    with LocalCluster(tmp_path, timings=TIMINGS, containers=True) as cluster:
        cluster.start_control_plane()
        cluster.start_agent("a", NODE_VOLUME_ROOT=str(storage))
        extra: dict[str, Any] = {"failover_strategy": strategy}
        if strategy == "regional_volume":
            volume = cluster.api.post(
                "/api/v1/failover/regional-volume/create", json={"region": "local", "size_gb": 1}
            ).json()
            extra["volume_id"] = volume["volume_id"]
        web = serving(cluster, "web", **extra)
        cluster.start_agent("b", NODE_VOLUME_ROOT=str(storage))
        acked = [cluster.hit(web["id"]) for _ in range(3)]
        moment = time.time()
        if strategy != "regional_volume":
            cluster.snapshot_after(web["id"], moment)
        if strategy in ("warm_pool", "both"):
            wait_until(
                lambda: (
                    (s := cluster.instance(web["id"])["standby_snapshot"])
                    and s > ""
                    and cluster.instance(web["id"])["standby_synced_at"] is not None
                ),
                20,
                "the standby to sync",
            )
        cluster.kill_agent("a")
        moved = wait_until(lambda: cluster.serving(web["id"], epoch=2), 40, f"web moved by {strategy}")
        assert cluster.node_name(moved["node_id"]) == "b"
        assert cluster.hit(web["id"]) == acked[-1] + 1
        assert moved["spec"]["image_digest"] == web["spec"]["image_digest"]
        [failover] = cluster.ended_failovers(web["id"])
        assert failover["status"] == "completed"
        never_two(cluster, web["id"])


def test_disabled_leaves_a_dead_node_s_container_instance_alone(cluster: LocalCluster) -> None:
    cluster.start_agent("a")
    web = serving(cluster, "web", failover_strategy="disabled")
    cluster.start_agent("b")
    cluster.kill_agent("a")
    wait_until(lambda: not running_containers(cluster, web["id"]), 20, "the keeper to stop it")
    wait_until(lambda: (cluster.node("a") or {}).get("status") == "offline", 20, "a offline")
    time.sleep(1)
    inst = cluster.instance(web["id"])
    assert (inst["epoch"], inst["node_id"]) == (1, web["node_id"])
    assert cluster.failovers(web["id"]) == []


def own_storage(cluster: LocalCluster, name: str) -> tuple[str, Path]:
    """NODE_CONTAINER_OPTIONS for a node with an empty Podman storage of its own, and its runroot."""
    runroot = Path(tempfile.mkdtemp(prefix="tkr-"))  # podman refuses a runroot over 50 characters
    options = cluster.extra_env["NODE_CONTAINER_OPTIONS"].split()
    options[options.index("--root") + 1] = str(cluster.root / f"storage-{name}")
    options[options.index("--runroot") + 1] = str(runroot)
    return " ".join(options), runroot


@contextmanager
def registry(root: Path) -> Iterator[str]:
    """Debian's docker-registry (the CNCF distribution) on a loopback port: its address."""
    port = free_port()
    config = root / "registry.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root / 'registry'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    with open(root / "registry.log", "wb") as log:
        server = subprocess.Popen(
            ["docker-registry", "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/v2/"), 20, "the registry")
        yield f"127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.skipif(shutil.which("docker-registry") is None, reason="docker-registry is not installed")
def test_a_node_without_the_image_pulls_it_by_its_digest(cluster: LocalCluster, tmp_path: Path) -> None:
    with registry(tmp_path) as address:
        conf = tmp_path / "registries.conf"
        conf.write_text(f'[[registry]]\nlocation = "{address}"\ninsecure = true\n')
        cluster.extra_env["CONTAINERS_REGISTRIES_CONF"] = str(conf)
        image = f"{address}/takeover/counter:1"
        cluster.podman("push", "--tls-verify=false", "localhost/takeover-counter:1", f"docker://{image}")
        nodes = {name: own_storage(cluster, name) for name in ("a", "b")}
        try:
            cluster.start_agent("a", NODE_CONTAINER_OPTIONS=nodes["a"][0])
            web = serving(cluster, "web", spec={"image": image})
            digest = web["spec"]["image_digest"]
            assert digest.startswith("sha256:")  # the registry's manifest digest, pulled by a
            cluster.start_agent("b", NODE_CONTAINER_OPTIONS=nodes["b"][0])
            acked = cluster.hit(web["id"])
            cluster.snapshot_after(web["id"], time.time())
            cluster.kill_agent("a")
            moved = wait_until(lambda: cluster.serving(web["id"], epoch=2), 60, "web to serve on b")
            assert cluster.node_name(moved["node_id"]) == "b"
            assert cluster.hit(web["id"]) == acked + 1
            b = ["podman", *nodes["b"][0].split()]
            pulled = subprocess.run(
                [*b, "image", "inspect", "--format", "{{.Digest}}", f"{address}/takeover/counter@{digest}"],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, **cluster.extra_env},
            )
            assert pulled.stdout.strip() == digest  # b pulled exactly the image a ran
        finally:
            for options, runroot in nodes.values():
                subprocess.run(
                    ["podman", *options.split(), "rm", "-a", "-f", "--time", "0"],
                    capture_output=True,
                    check=False,
                    env={**os.environ, **cluster.extra_env},
                )
                shutil.rmtree(runroot, ignore_errors=True)


def test_no_token_reaches_a_container_and_its_variables_arrive_whole(cluster: LocalCluster) -> None:
    """The agent was started from a shell that exported the admin token; the container sees its
    spec's variables (a multi-line one too) and the instance's, nothing of the agent's."""
    cluster.start_agent("a", TAKEOVER_JOIN_TOKEN=cluster.join_token("local"), TAKEOVER_TOKEN=ADMIN_TOKEN)
    env = {"DB_URL": "postgresql://u:p@db/app?sslmode=require", "PEM": "line one\nline two"}
    command = ["sh", "-c", "export -p; echo probe done; exec /app/serve"]
    spec = {"image": COUNTER_IMAGE, "command": command, "env": env}
    made = cluster.api.post("/api/v1/instances", json={"name": "env", "spec": spec}).json()
    output = wait_until(
        lambda: "probe done" in (t := cluster.api.get(f"/api/v1/instances/{made['id']}/logs").text) and t,
        60,
        "the container's environment in its logs",
    )
    text = json.loads(output)["chunks"]
    shown = "".join(chunk["text"] for chunk in text)
    names = set(re.findall(r"^export (\w+)=", shown, re.MULTILINE))
    assert {"DB_URL", "PEM", "PORT", "TAKEOVER_INSTANCE_ID", "TAKEOVER_EPOCH", "TAKEOVER_WORKSPACE"} <= names
    assert not {n for n in names if n.startswith("NODE_")}, names
    assert {n for n in names if n.startswith("TAKEOVER_")} == {
        "TAKEOVER_INSTANCE_ID",
        "TAKEOVER_EPOCH",
        "TAKEOVER_WORKSPACE",
    }
    assert "export DB_URL='postgresql://u:p@db/app?sslmode=require'" in shown
    assert "export PEM='line one\nline two'" in shown
    assert ADMIN_TOKEN not in shown
    assert "tkj_" not in shown
    assert "tko_" not in shown
