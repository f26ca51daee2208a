"""The CLI for scripts and for watching: -o json is the API's objects, --watch redraws until
Ctrl-C, and `failover execute` prints each step as the control plane records it."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from takeover.localcluster import ADMIN_TOKEN, TAKEOVER, LocalCluster, wait_until
from tests.e2e.test_strategies import cli

pytestmark = pytest.mark.e2e


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path) as c:
        c.start_control_plane()
        c.start_agent("a")
        yield c


class Watching:
    """A CLI command left running, its output lines read as they come."""

    def __init__(self, cluster: LocalCluster, *args: str) -> None:
        env = {**os.environ, "TAKEOVER_URL": cluster.url, "TAKEOVER_TOKEN": ADMIN_TOKEN, "COLUMNS": "200"}
        self.process = subprocess.Popen(
            [*TAKEOVER, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def line(self, timeout: float = 15) -> str:
        return self.lines.get(timeout=timeout)

    def until(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.line(max(0.1, deadline - time.monotonic())):
            pass

    def interrupt(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGINT)
        _, err = self.process.communicate(timeout=10)
        return self.process.returncode, err


def test_execute_prints_each_step_and_json_is_the_api_s_objects(cluster: LocalCluster) -> None:
    web = cluster.create_counter("web")
    wait_until(lambda: cluster.serving(web["id"]), 30, "web to serve")
    cluster.snapshot_after(web["id"], 0)
    cluster.start_agent("b")

    shown = cli(cluster, "failover", "execute", "web")
    steps = [line.split()[0] for line in shown.splitlines() if line.startswith("  ") and " ms" in line]
    assert steps == ["pending", "backing_up", "migrating", "restoring"], shown
    assert "attempt 1: cpu_standby on" in shown
    assert "cpu_standby on b, serving at" in shown

    for command, path in (
        (("failover", "list"), f"/api/v1/failovers?instance_id={web['id']}"),
        (("token", "list"), "/api/v1/tokens"),
        (("failover", "readiness", "web"), f"/api/v1/failover/readiness/{web['id']}"),
    ):
        before = cluster.api.get(path).json()
        shown_json = json.loads(cli(cluster, *command, "-o", "json"))
        # A periodic snapshot may land between two reads (readiness names the latest one).
        assert shown_json in (before, cluster.api.get(path).json()), command
    strategies = cluster.api.get("/api/v1/failover/strategies").json()["strategies"]
    assert json.loads(cli(cluster, "failover", "strategies", "-o", "json")) == strategies
    leader = json.loads(cli(cluster, "leader", "-o", "json"))
    assert set(leader) == set(cluster.api.get("/api/v1/leader").json())
    assert leader["current"] is True
    failover_id = re.findall(r"^failover (\S+):", shown, re.MULTILINE)[-1]
    [listed] = cluster.api.get(f"/api/v1/failovers?instance_id={web['id']}").json()
    assert json.loads(cli(cluster, "failover", "show", failover_id, "-o", "json")) == listed


def test_watch_redraws_until_ctrl_c(cluster: LocalCluster) -> None:
    lines = Watching(cluster, "nodes", "list", "--watch", "-o", "json")
    first, second = json.loads(lines.line()), json.loads(lines.line())
    assert [n["name"] for n in first] == [n["name"] for n in second] == ["a"]
    assert lines.interrupt() == (0, "")

    table = Watching(cluster, "instances", "list", "-w")
    table.until("instances")
    cluster.create_counter("late")  # created after the watch began: appears in a redraw
    table.until("late")
    code, err = table.interrupt()
    assert code == 0
    assert "Traceback" not in err


def run(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TAKEOVER_URL": cluster.url, "TAKEOVER_TOKEN": ADMIN_TOKEN, "COLUMNS": "250"}
    return subprocess.run(
        [*TAKEOVER, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_create_waits_until_running_or_says_why_it_failed_and_events_name_what_they_are_about(
    cluster: LocalCluster,
) -> None:
    made = run(cluster, "instances", "create", "web", "--", sys.executable, "-m", "takeover.examples.counter")
    assert made.returncode == 0, made.stdout + made.stderr
    assert re.search(r"running at 127\.0\.0\.1:\d+", made.stdout), made.stdout
    bad = run(cluster, "instances", "create", "bad", "--", "/nonexistent/program")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "failed to start:" in bad.stdout
    assert "/nonexistent/program" in bad.stdout  # its reason, as the agent reported it
    listed = cli(cluster, "instances", "list")
    assert re.search(r"failed: \S", listed), listed
    ids = [i["id"] for i in cluster.api.get("/api/v1/instances").json()]
    if ids[0][:3] != ids[1][:3]:  # three characters are enough when no other id starts so
        assert json.loads(cli(cluster, "instances", "show", ids[0][:3], "-o", "json"))["id"] == ids[0]
    ready = cli(cluster, "failover", "readiness", "web")
    assert "latest snapshot:" in ready  # its details in words, not a dict
    assert "{" not in ready
    piped = {k: v for k, v in os.environ.items() if k != "COLUMNS"}  # a pipe, as `| grep` gives it
    piped |= {"TAKEOVER_URL": cluster.url, "TAKEOVER_TOKEN": ADMIN_TOKEN}
    wide = subprocess.run(
        [*TAKEOVER, "instances", "list", "-o", "wide"], env=piped, capture_output=True, text=True, check=True
    ).stdout
    assert "…" not in wide
    assert all(i in wide for i in ids)  # full ids, every column whole
    nodes = subprocess.run(
        [*TAKEOVER, "nodes", "list", "-o", "wide"], env=piped, capture_output=True, text=True, check=True
    ).stdout
    assert "processes, containers" in nodes  # what each node runs, as its agent says
    events = cli(cluster, "events", "-n", "50")
    assert "instance web" in events
    assert "node a" in events


def test_an_on_demand_snapshot_is_answered_long_before_the_next_heartbeat(tmp_path: Path) -> None:
    """Heartbeats a minute apart: the request reaches the node over its stream and the node
    reports the stored snapshot at once, so the CLI answers well within its 30 s."""
    slow = {
        "TAKEOVER_HEARTBEAT_INTERVAL": "60",
        "TAKEOVER_FENCE_AFTER": "150",
        "TAKEOVER_FENCE_MARGIN": "10",
        "TAKEOVER_OFFLINE_AFTER": "200",
    }
    with LocalCluster(tmp_path, timings=slow, snapshot_interval=3600) as slow_cluster:
        slow_cluster.start_control_plane()
        slow_cluster.start_agent("a")
        made = run(
            slow_cluster,
            "instances",
            "create",
            "web",
            "--",
            sys.executable,
            "-m",
            "takeover.examples.counter",
        )
        assert made.returncode == 0, made.stdout + made.stderr
        taken = run(slow_cluster, "instances", "snapshot", "web", "--timeout", "30")
        assert taken.returncode == 0, taken.stdout + taken.stderr
        assert re.search(r"snapshot \S+ stored", taken.stdout)
