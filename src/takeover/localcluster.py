"""A control plane and node agents as real processes on loopback: for the demo, tests and benches.

Each agent is a separate `takeover agent` process with its own data directory; all share one
snapshot directory, as nodes would share an NFS path. Killing an agent with SIGKILL kills its
workloads too (they die with their parent), which is what a dead machine looks like; container
workloads (``containers=True``: the counter image in a Podman storage of the cluster's own) are
stopped by their keepers at the node's fence deadline instead.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from takeover.domain.snapshots import SnapshotRef
from takeover.examples.image import COUNTER_IMAGE, RENTABLE_IMAGE, import_counter_image

if TYPE_CHECKING:
    from takeover.testing.machines import Podman

ADMIN_TOKEN = "local-admin-token"
TAKEOVER = [sys.executable, "-m", "takeover"]

# 1 s heartbeats; a silent node fences itself after 2 s and is declared offline after 3 s.
FAST_TIMINGS = {
    "TAKEOVER_HEARTBEAT_INTERVAL": "1",
    "TAKEOVER_FENCE_AFTER": "2",
    "TAKEOVER_FENCE_MARGIN": "0.5",
    "TAKEOVER_OFFLINE_AFTER": "3",
    "TAKEOVER_MONITOR_INTERVAL": "0.25",
    "TAKEOVER_LEASE_TTL": "3",
    "TAKEOVER_STOP_TIMEOUT": "20",
    "TAKEOVER_RESTORE_TIMEOUT": "60",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(check: Callable[[], object], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@dataclass
class AgentProcess:
    name: str
    process: subprocess.Popen[bytes]
    data_dir: Path
    url: str


class LocalCluster:
    def __init__(
        self,
        root: Path,
        timings: dict[str, str] | None = None,
        snapshot_interval: float = 1.0,
        extra_env: dict[str, str] | None = None,
        containers: bool = False,
    ) -> None:
        self.root = root
        self.timings = {**FAST_TIMINGS, **(timings or {})}
        self.snapshot_interval = snapshot_interval
        self.extra_env = extra_env or {}
        self.snapshot_dir = root / "snapshots"
        self.url = ""
        self.server: subprocess.Popen[bytes] | None = None
        self.agents: dict[str, AgentProcess] = {}
        self.api = httpx.Client(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)
        self._ports = 20000
        self._agent_settings: dict[str, dict[str, Any]] = {}
        self.containers = containers
        self.container_cli: list[str] = []
        self._runroot: Path | None = None
        if containers:
            self._set_up_podman()

    def _set_up_podman(self) -> None:
        """A Podman storage of this cluster's own, with the counter image imported offline.

        The options are the ones this kind of machine needs (cgroups v1 hybrid, restricted
        rlimits): runc rather than crun, no default ulimits, vfs storage, cgroupfs, file events.
        """
        base = self.root / "containers"
        base.mkdir(parents=True, exist_ok=True)
        conf = base / "containers.conf"
        conf.write_text("[containers]\ndefault_ulimits = []\n")
        self._runroot = Path(tempfile.mkdtemp(prefix="tkr-"))  # podman refuses one over 50 characters
        options = (
            f"--root {shlex.quote(str(base / 'storage'))} --runroot {self._runroot} --storage-driver vfs"
            " --runtime runc --cgroup-manager cgroupfs --events-backend file"
        )
        self.extra_env.update(
            CONTAINERS_CONF=str(conf), NODE_CONTAINER_RUNTIME="podman", NODE_CONTAINER_OPTIONS=options
        )
        self.container_cli = ["podman", *shlex.split(options)]
        import_counter_image(self.container_cli, env=self._env())

    def rentable_image(self) -> Podman:
        """Import RENTABLE_IMAGE (the counter with python3) and say how the fake marketplace
        boots machines from this cluster's storage, sharing its snapshot directory."""
        from takeover.testing.machines import Podman  # takeover.testing loads the store: not for the CLI

        import_counter_image(self.container_cli, RENTABLE_IMAGE, env=self._env(), python=True)
        return Podman(
            tuple(self.container_cli),
            {"CONTAINERS_CONF": self.extra_env["CONTAINERS_CONF"]},
            (self.snapshot_dir,),
        )

    def podman(self, *args: str) -> str:
        """A podman command on the cluster's storage; its output."""
        done = subprocess.run(
            [*self.container_cli, *args], env=self._env(), capture_output=True, text=True, check=True
        )
        return done.stdout

    def _env(self, **env: str) -> dict[str, str]:
        return {**os.environ, "TAKEOVER_LOG_LEVEL": "info", **self.extra_env, **env}

    def start_control_plane(
        self, host: str = "127.0.0.1", port: int | None = None, env: dict[str, str] | None = None
    ) -> str:
        """``host``: the address it listens on and agents reach it at (tests may use a veth's);
        ``port``: the one it had, to restart it where its agents look for it; ``env``: its settings."""
        port = port or free_port()
        data = self.root / "control-plane"
        data.mkdir(parents=True, exist_ok=True)
        environment = self._env(
            TAKEOVER_DATA_DIR=str(data),
            TAKEOVER_HOST=host,
            TAKEOVER_PORT=str(port),
            TAKEOVER_ADMIN_TOKEN=ADMIN_TOKEN,
            TAKEOVER_PUBLIC_URL=f"http://{host}:{port}",
            **{**self.timings, **(env or {})},
        )
        with open(self.root / "control-plane.log", "ab") as log:
            self.server = subprocess.Popen(
                [*TAKEOVER, "serve"], env=environment, stdout=log, stderr=subprocess.STDOUT
            )
        self.url = f"http://{host}:{port}"
        self.api.base_url = httpx.URL(self.url)
        wait_until(self._healthy, 30, f"the control plane on {self.url}")
        return self.url

    def kill_control_plane(self) -> int:
        """SIGKILL, mid-whatever it was doing; its port, to start it again there."""
        assert self.server is not None
        self.server.send_signal(signal.SIGKILL)
        self.server.wait()
        return int(self.url.rpartition(":")[2])

    def _healthy(self) -> bool:
        if self.server is not None and self.server.poll() is not None:
            raise RuntimeError(f"the control plane exited; see {self.root / 'control-plane.log'}")
        try:
            return self.api.get("/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def start_agent(
        self,
        name: str,
        region: str | None = None,
        url: str | None = None,
        wrapper: Sequence[str] = (),
        wait: bool = True,
        **env: str,
    ) -> AgentProcess:
        """Start (or restart, keeping its data directory and settings) the agent ``name``.

        ``wrapper`` runs it through another command, e.g. ``ip netns exec NS`` for a test host;
        ``wait=False`` returns before it registered (to start many at once).
        """
        before = self._agent_settings.get(name, {})
        region = region or before.get("region", "local")
        url = url or before.get("url")
        env = {**before.get("env", {}), **env}
        self._agent_settings[name] = {"region": region, "url": url, "env": env}
        data = self.root / "agents" / name
        data.mkdir(parents=True, exist_ok=True)
        low = self._ports
        self._ports += 100
        joining = {}
        if (
            not (data / "node.json").exists()
            and not {"NODE_ID", "TAKEOVER_JOIN_TOKEN", "TAKEOVER_TOKEN"} & env.keys()
        ):
            joining["TAKEOVER_JOIN_TOKEN"] = self.join_token(region)
        environment = self._env(
            **joining,
            TAKEOVER_URL=url or self.url,
            NODE_NAME=name,
            NODE_REGION=region,
            NODE_PORT_RANGE=f"{low}-{low + 99}",
            NODE_WITNESS_PORT="0",
            TAKEOVER_AGENT_DIR=str(data),
            TAKEOVER_SNAPSHOT_DIR=str(self.snapshot_dir),
            SNAPSHOT_INTERVAL=str(self.snapshot_interval),
            STOP_GRACE="2",
            **env,
        )
        with open(self.root / f"agent-{name}.log", "ab") as log:
            process = subprocess.Popen(
                [*wrapper, *TAKEOVER, "agent"], env=environment, stdout=log, stderr=subprocess.STDOUT
            )
        agent = AgentProcess(name, process, data, url or self.url)
        self.agents[name] = agent

        def registered() -> dict[str, Any] | None:
            """Known and heard from: a node registered ahead by its token has no heartbeat yet."""
            if process.poll() is not None:
                raise RuntimeError(f"agent {name} exited; see {self.root / f'agent-{name}.log'}")
            node = self.node(name)
            return node if node and node["last_heartbeat_at"] else None

        if wait:
            wait_until(registered, 30, f"agent {name} to register")
        return agent

    def witnessed(self, timeout: float = 30) -> None:
        """Until every node asks as many witnesses as the pool allows (three at most): a node's
        failover needs its witnesses to outlive it (docs/rules.md, Witnesses)."""

        def settled() -> bool:
            nodes = self.api.get("/api/v1/nodes").json()
            return all(len(n["witnesses"]) == min(3, len(nodes) - 1) for n in nodes)

        wait_until(settled, timeout, "every node to use its witnesses")

    def join_token(self, region: str, uses: int = 1) -> str:
        """A join token for ``uses`` new nodes of ``region`` (as `takeover nodes join-token`)."""
        made = self.api.post("/api/v1/join-tokens", json={"region": region, "max_uses": uses})
        made.raise_for_status()
        token: str = made.json()["token"]
        return token

    def kill_agent(self, name: str) -> None:
        """SIGKILL: the node is gone, with everything it ran."""
        agent = self.agents[name]
        agent.process.send_signal(signal.SIGKILL)
        agent.process.wait()

    def node(self, name: str) -> dict[str, Any] | None:
        for node in self.api.get("/api/v1/nodes").json():
            if node["name"] == name:
                return dict(node)
        return None

    def node_name(self, node_id: str | None) -> str | None:
        return next((n["name"] for n in self.api.get("/api/v1/nodes").json() if n["id"] == node_id), None)

    def create_counter(self, name: str, **extra: Any) -> dict[str, Any]:
        """The counter workload: a process, or its image in a cluster with containers."""
        spec: dict[str, Any] = {"command": [sys.executable, "-m", "takeover.examples.counter"]}
        if self.containers:
            spec = {"image": COUNTER_IMAGE}
        response = self.api.post("/api/v1/instances", json={"name": name, "spec": spec, **extra})
        response.raise_for_status()
        return dict(response.json())

    def instance(self, instance_id: str) -> dict[str, Any]:
        return dict(self.api.get(f"/api/v1/instances/{instance_id}").json())

    def serving(self, instance_id: str, epoch: int | None = None) -> dict[str, Any] | None:
        """The instance's record once it runs (at ``epoch`` or later) and answers at its endpoint."""
        inst = self.instance(instance_id)
        if (
            inst["state"] != "running"
            or not inst["endpoint"]
            or (epoch is not None and inst["epoch"] < epoch)
        ):
            return None
        try:
            httpx.get(f"http://{inst['endpoint']}/count", timeout=1).raise_for_status()
        except httpx.HTTPError:
            return None
        return inst

    def snapshot_after(self, instance_id: str, moment: float) -> str:
        """Wait for a snapshot of the current runner taken after ``moment`` (a time.time()):
        from then on a node death keeps what was acknowledged before ``moment``."""

        def newer() -> str | None:
            snap = self.instance(instance_id)["last_snapshot"]
            return snap if snap and SnapshotRef.parse(snap).taken_at.timestamp() > moment else None

        found: str = wait_until(newer, 20, "a snapshot taken after the last write")
        return found

    def hit(self, instance_id: str) -> int:
        """One counted request, once the instance serves (a restarted runner reports starting
        again for a moment, clearing its endpoint); returns the count it acknowledged."""
        inst = wait_until(lambda: self.serving(instance_id), 10, "the instance to serve")
        count: int = httpx.get(f"http://{inst['endpoint']}/", timeout=2).json()["count"]
        return count

    def failovers(self, instance_id: str) -> list[dict[str, Any]]:
        return [f for f in self.api.get("/api/v1/failovers").json() if f["instance_id"] == instance_id]

    def ended_failovers(self, instance_id: str, timeout: float = 10) -> list[dict[str, Any]]:
        """The instance's failovers once none is still open: a heartbeat records the new copy
        running, the leader's next cycle completes the failover (on another replica, later)."""
        ended: list[dict[str, Any]] = wait_until(
            lambda: (
                (found := self.failovers(instance_id))
                and all(f["status"] in ("completed", "failed") for f in found)
                and found
            ),
            timeout,
            f"the failovers of {instance_id} to end",
        )
        return ended

    def close(self) -> None:
        for agent in self.agents.values():
            _terminate(agent.process)
        if self.server is not None:
            _terminate(self.server)
        self.api.close()
        if self.container_cli:  # what a killed agent's keepers have not stopped yet
            subprocess.run(
                [*self.container_cli, "rm", "-a", "-f", "--time", "0"],
                env=self._env(),
                capture_output=True,
                check=False,
            )
        if self._runroot is not None:
            shutil.rmtree(self._runroot, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _terminate(process: subprocess.Popen[bytes], timeout: float = 15) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
