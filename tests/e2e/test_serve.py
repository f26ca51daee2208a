"""`takeover serve` as a real process: heartbeats over HTTP, a node goes silent, its
instances come back on the others with a higher epoch; the CLI drives the same server."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from takeover.localcluster import wait_until
from tests.conftest import new_store_url
from tests.e2e.process import TAKEOVER, serve, start

pytestmark = pytest.mark.e2e
FAST = {
    "TAKEOVER_HEARTBEAT_INTERVAL": "0.3",
    "TAKEOVER_FENCE_AFTER": "1.0",
    "TAKEOVER_FENCE_MARGIN": "0.5",
    "TAKEOVER_OFFLINE_AFTER": "2.0",
    "TAKEOVER_MONITOR_INTERVAL": "0.3",
    "TAKEOVER_LEASE_TTL": "3",
}
ADMIN = {"Authorization": "Bearer admin-secret"}


class FakeAgent(threading.Thread):
    """Heartbeats like an agent and reports whatever it is told to run as running.

    It runs no processes: the real agent is a later issue. Everything it sends is real HTTP.
    """

    def __init__(self, url: str, node: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.url, self.node = url, node
        self.running: dict[str, int] = {}
        self.alive = threading.Event()
        self.alive.set()
        self.stopped = threading.Event()

    def run(self) -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {self.node['api_token']}"}) as client:
            while not self.stopped.is_set():
                if self.alive.is_set():
                    reports = [{"id": i, "epoch": e, "state": "running"} for i, e in self.running.items()]
                    body = {"cpu_load": 0.2, "memory_load": 0.3, "avg_latency_ms": 1, "instances": reports}
                    reply = client.post(
                        f"{self.url}/api/v1/nodes/{self.node['id']}/heartbeat", json=body
                    ).json()
                    self.running = {d["id"]: d["epoch"] for d in reply["desired"]}
                self.stopped.wait(0.3)


@pytest.mark.parametrize(
    ("backend", "workers"), [("sqlite", 1), pytest.param("postgres", 2, marks=pytest.mark.postgres)]
)
def test_a_silent_node_loses_its_instances_to_the_others(
    tmp_path: Path, request: pytest.FixtureRequest, backend: str, workers: int
) -> None:
    env = {**FAST, "TAKEOVER_WORKERS": str(workers)}
    if backend == "postgres":
        env["TAKEOVER_DATABASE_URL"] = new_store_url(backend, request, tmp_path)
    with serve(tmp_path, **env) as url, httpx.Client(base_url=url, headers=ADMIN) as api:
        agents = []
        for i in range(3):
            node = api.post(
                "/api/v1/nodes",
                json={"name": f"n{i}", "region": "r1", "base_url": f"http://127.0.0.1:{9000 + i}"},
            ).json()
            agents.append(FakeAgent(url, node))
        for agent in agents:
            agent.start()
        instances = [
            api.post("/api/v1/instances", json={"name": f"i{k}", "spec": {"command": ["sleep", "9"]}}).json()
            for k in range(6)
        ]
        wait_until(
            lambda: all(i["state"] == "running" for i in api.get("/api/v1/instances").json()),
            10,
            "instances running",
        )

        victim = next(a for a in agents if any(i["node_id"] == a.node["id"] for i in instances))
        lost = {i["id"]: i["epoch"] for i in instances if i["node_id"] == victim.node["id"]}
        victim.alive.clear()  # its heartbeats stop

        def moved() -> bool:
            now = {i["id"]: i for i in api.get("/api/v1/instances").json()}
            return all(now[i]["node_id"] != victim.node["id"] and now[i]["state"] == "running" for i in lost)

        wait_until(moved, 20, "instances of the silent node running elsewhere")

        def completed() -> bool:
            return all(f["status"] == "completed" for f in api.get("/api/v1/failovers").json())

        wait_until(completed, 10, "failovers completed (the leader sees the report within one cycle)")
        for agent in agents:
            agent.stopped.set()
        final = {i["id"]: i for i in api.get("/api/v1/instances").json()}
        for instance_id, epoch in lost.items():
            assert final[instance_id]["epoch"] > epoch
        assert api.get(f"/api/v1/nodes/{victim.node['id']}").json()["status"] == "offline"
        failovers = api.get("/api/v1/failovers").json()
        assert {f["instance_id"] for f in failovers} == set(lost)
        assert {(f["reason"], f["status"]) for f in failovers} == {("node_failure", "completed")}


def test_the_cli_manages_the_pool(tmp_path: Path) -> None:
    env = {**os.environ, "TAKEOVER_DATA_DIR": str(tmp_path), "COLUMNS": "250"}
    # Its nodes never heartbeat: they must stay placeable across the CLI calls of a loaded machine.
    with serve(tmp_path, **FAST | {"TAKEOVER_OFFLINE_AFTER": "120"}) as url:
        env |= {"TAKEOVER_URL": url, "TAKEOVER_TOKEN": "admin-secret"}

        def cli(*args: str, ok: bool = True) -> str:
            done = subprocess.run(
                [TAKEOVER, *args], check=False, env=env, capture_output=True, text=True, timeout=30
            )
            assert (done.returncode == 0) == ok, done.stdout + done.stderr
            assert "Traceback" not in done.stderr
            return done.stdout + done.stderr

        registered = cli(
            "nodes",
            "register",
            "cli-node",
            "--region",
            "br-south",
            "--base-url",
            "http://127.0.0.1:9100",
            "--label",
            "gpu_name=RTX_4090",
        )
        assert "NODE_TOKEN=tko_" in registered
        assert "cli-node" in cli("nodes", "list")
        assert "already exists" in cli(
            "nodes", "register", "cli-node", "--region", "x", "--base-url", "http://127.0.0.1:1", ok=False
        )
        assert "label 'gpu' is not KEY=value" in cli(
            "nodes",
            "register",
            "x",
            "--region",
            "r",
            "--base-url",
            "http://127.0.0.1:1",
            "--label",
            "gpu",
            ok=False,
        )
        assert "base_url" in cli(
            "nodes", "register", "other", "--region", "x", "--base-url", "nope", ok=False
        )
        elsewhere = tmp_path / "elsewhere"  # as a user's shell: no TAKEOVER_DATA_DIR, another folder
        elsewhere.mkdir()
        made = subprocess.run(
            [TAKEOVER, "token", "create", "--role", "user", "--subject", "alice"],
            env={k: v for k, v in env.items() if k != "TAKEOVER_DATA_DIR"},
            cwd=elsewhere,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        user_token = made.stdout.strip().splitlines()[-1]
        assert user_token.startswith("tko_")
        as_alice = httpx.get(url + "/api/v1/instances", headers={"Authorization": f"Bearer {user_token}"})
        assert as_alice.status_code == 200  # made by the server at TAKEOVER_URL, not in a stray store
        assert list(elsewhere.iterdir()) == []
        assert "alice" in cli("token", "list")
        spare = cli(
            "nodes", "register", "spare", "--region", "br-south", "--base-url", "http://127.0.0.1:9101"
        )
        assert "no node named" in cli("nodes", "drain", "ghost", ok=False)
        created = cli(
            "instances",
            "create",
            "web",
            "--no-wait",
            "--env",
            "PORT=8000",
            "--",
            "python3",
            "-m",
            "http.server",
        )
        assert re.search(r"placed on (cli-node|spare) at epoch 1", created)  # a name, not an id
        assert "web" in cli("instances", "list")
        assert "give the command after --" in cli("instances", "create", "bare", ok=False)
        assert "already exists" in cli("instances", "create", "web", "--", "true", ok=False)
        assert "draining" in cli("nodes", "drain", "cli-node")
        assert "failovers" in cli("failover", "list")
        assert "no instance named 'ghost'" in cli("failover", "start", "ghost", ok=False)
        assert "relative path" in cli("instances", "create", "rel", "--", ".venv/bin/python", ok=False)
        leading = wait_until(lambda: "(held)" in (shown := cli("leader")) and shown, 10, "a leader")
        assert "at epoch 1" in leading
        assert "answered by replica" in leading
        assert "ok: the store takes writes" in cli("status")
        node_id = re.search(r"NODE_ID=(\S+)", spare)[1]  # type: ignore[index]
        node_token = re.search(r"NODE_TOKEN=(\S+)", spare)[1]  # type: ignore[index]
        beat = {"cpu_load": 0.1, "memory_load": 0.1, "avg_latency_ms": 1.0, "instances": []}
        heard = httpx.post(
            f"{url}/api/v1/nodes/{node_id}/heartbeat",
            json=beat,
            headers={"Authorization": f"Bearer {node_token}"},
        )
        assert heard.status_code == 200, heard.text
        time.sleep(float(FAST["TAKEOVER_FENCE_AFTER"]) + 0.5)  # silent past its fence, not offline yet
        silent = cli("status", ok=False)
        assert "(spare)" in silent
        env["TAKEOVER_TOKEN"] = "wrong"
        assert "401" in cli("nodes", "list", ok=False)
    env["TAKEOVER_TOKEN"] = "admin-secret"
    assert "cannot reach the control plane" in cli("nodes", "list", ok=False)


def test_serve_refuses_unsafe_timings_with_a_clear_message(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "TAKEOVER_DATA_DIR": str(tmp_path),
        "TAKEOVER_OFFLINE_AFTER": "5",
        "TAKEOVER_FENCE_AFTER": "5",
    }
    done = subprocess.run(
        [TAKEOVER, "serve"], check=False, env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert "offline_after (5.0s) must exceed fence_after" in done.stderr
    assert "Traceback" not in done.stderr


def test_sigterm_hands_the_leader_lease_over(tmp_path: Path) -> None:
    with serve(tmp_path, **FAST) as url:
        wait_until(lambda: "takeover_leader 1.0" in httpx.get(url + "/metrics").text, 10, "leadership")
    assert _lease_released(tmp_path), "the lease was not released on shutdown"


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_first_drains_then_stops(tmp_path: Path, workers: int) -> None:
    """The balancer sees /readyz fail while the replica still answers, then it stops."""
    process, url = start(tmp_path, **FAST, TAKEOVER_DRAIN_SECONDS="2", TAKEOVER_WORKERS=str(workers))
    try:
        wait_until(lambda: "takeover_leader 1.0" in httpx.get(url + "/metrics").text, 10, "leadership")
        assert httpx.get(url + "/readyz").status_code == 200
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        wait_until(lambda: httpx.get(url + "/readyz").status_code == 503, 5, "readyz to fail")
        for _ in range(4):  # whichever worker answers
            assert httpx.get(url + "/readyz").json()["reason"] == "draining: shutting down"
        assert httpx.get(url + "/livez").status_code == 200
        # one server re-raises SIGTERM after its graceful stop; a supervisor of workers exits 0
        assert process.wait(timeout=20) == (-signal.SIGTERM if workers == 1 else 0)
        assert time.monotonic() - signalled >= 2
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert _lease_released(tmp_path), "the lease was not handed over after the drain"


def _lease_released(data_dir: Path) -> bool:
    """Released on shutdown: expired at the epoch, so a successor need not wait for the ttl."""
    with sqlite3.connect(data_dir / "takeover.db") as db:
        (expires_at,) = db.execute("SELECT expires_at FROM leases WHERE name = 'controllers'").fetchone()
    return str(expires_at).startswith("1970-01-01")
