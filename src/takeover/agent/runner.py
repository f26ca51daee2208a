"""One supervised instance: start, readiness, restarts with backoff, stop, through a runtime.

Which runtime (a process, a container) is the runtime port's business (agent/runtime.py).
"""

from __future__ import annotations

import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from takeover.agent.keeper import EPOCH_FILE
from takeover.agent.runtime import Handle, Launch, LaunchError, Runtime
from takeover.domain.models import InstanceSpec, InstanceState

_LAST_LINES = 10  # of output, in the error of a runner that gave up


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    max_restarts: int = 3
    backoff: float = 1.0  # seconds before the first restart; doubles each time
    ready_after: float = 10.0  # alive this long without listening on its port: running anyway


@dataclass
class Runner:
    instance_id: str
    name: str
    epoch: int
    spec: InstanceSpec
    workspace: Path
    port: int
    log_path: Path
    policy: RestartPolicy
    runtime: Runtime
    state: InstanceState = InstanceState.STARTING
    error: str | None = None
    warning: str | None = None  # lasts for this runner: e.g. newer snapshots refused as corrupt
    restored_from: str | None = None
    last_snapshot: str | None = None
    snapshot_error: str | None = None  # why its last snapshot failed (reported until one works)
    restarts: int = 0
    handle: Handle | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    released: bool = False  # a handover: stop, take a final snapshot, report stopped
    on_volume: bool = False  # the workspace is a regional volume: no snapshots, no restores
    snapshot_request: str | None = None  # the control plane's latest on-demand request
    snapshot_served: str | None = None  # the request the last snapshot answered
    labels: dict[str, str] = field(default_factory=dict)  # a container's, beside instance and epoch
    image_ref: str | None = None  # a container's image as resolved on this node (pinned)
    image_digest: str | None = None
    native: bool = False  # its image is this node itself (NODE_IMAGE): its command runs as a process
    gpu_indices: tuple[int, ...] = ()  # this node's GPUs it holds
    node_has_gpus: bool = False  # a process that holds none must not see them
    log_shipped: int = 0  # bytes of log_path the control plane has acknowledged
    host: str = "127.0.0.1"  # where it listens ($HOST); readiness is checked there
    advertised: str | None = None  # the host its clients reach it at (NODE_HOST), sent in reports
    advertised_port: int | None = None  # the port they reach it at (NODE_PORT_MAP), if not ``port``

    def unsent_log(self, most: int) -> tuple[str, int]:
        """Output not yet shipped, at most ``most`` bytes cut at a line end where one is, and
        where it ends. NUL bytes become U+FFFD: the API refuses NUL in text."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self.log_shipped)
                data = log.read(most)
        except FileNotFoundError:
            return "", self.log_shipped
        framed = self.runtime.name != "process"  # a container's log is framed line by line
        if (framed or len(data) == most) and b"\n" in data:
            data = data[: data.rindex(b"\n") + 1]
        elif framed:
            return "", self.log_shipped
        text = self.runtime.decode_log(data).replace("\x00", "\ufffd")
        return text, self.log_shipped + len(data)

    def last_lines(self) -> str:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(max(0, log.seek(0, 2) - 16 * 1024))
                data = log.read()
        except FileNotFoundError:
            return ""
        lines = self.runtime.decode_log(data[data.find(b"\n") + 1 :] if len(data) == 16 * 1024 else data)
        return "\n".join(lines.rstrip("\n").splitlines()[-_LAST_LINES:])

    def launch(self) -> Launch:
        container = self.spec.image is not None and not self.native
        env = {
            "HOST": self.host,
            **self.spec.env,
            "PORT": str(self.port),
            "TAKEOVER_INSTANCE_ID": self.instance_id,
            "TAKEOVER_EPOCH": str(self.epoch),
            "TAKEOVER_WORKSPACE": self.spec.mount_path if container else str(self.workspace),
        }
        if not container and (
            self.gpu_indices or self.node_has_gpus
        ):  # a container sees only its CDI devices
            env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, self.gpu_indices))
        if self.on_volume:  # a store can refuse a write once a newer epoch holds the volume
            env["TAKEOVER_EPOCH_FILE"] = f"{env['TAKEOVER_WORKSPACE']}/{EPOCH_FILE}"
        return Launch(
            self.instance_id,
            self.epoch,
            self.spec.command,
            env,
            self.workspace,
            self.port,
            self.log_path,
            image=self.image_ref if container else None,
            mount_path=self.spec.mount_path,
            labels=self.labels,
            gpus=self.gpu_indices,
            epoch_file=self.workspace / EPOCH_FILE if self.on_volume else None,
        )

    def start(self) -> None:
        try:
            self.handle = self.runtime.start(self.launch())
        except LaunchError as exc:
            self._give_up(str(exc))
            return
        self._follow_log(self.handle.log_path)
        self.state = InstanceState.STARTING
        self.started_at = time.monotonic()
        self.restart_at = None

    def resume(self, may_start: bool) -> None:
        """Start again (a handover called off): now, or once the fence is live; nothing while it
        still runs (called off before it stopped)."""
        if self.handle is not None and self.handle.exit_code() is None:
            return
        if may_start:
            self.start()
        else:
            self.state, self.restart_at = InstanceState.STARTING, time.monotonic()

    def adopt(self, handle: Handle) -> None:
        """A container an earlier agent started at this epoch: supervised from now on, not restarted."""
        self.handle = handle
        self._follow_log(handle.log_path)
        self.state = InstanceState.STARTING
        self.started_at = time.monotonic()

    def _follow_log(self, path: Path) -> None:
        if path != self.log_path:  # a runtime that gives each start a log file of its own
            self.log_path, self.log_shipped = path, 0

    def supervise(self, now: float, may_start: bool) -> None:
        """Notice exits (restart or give up) and readiness; called every loop tick. A restart
        waits while ``may_start`` is False (the node's fence is not live)."""
        if self.state in (InstanceState.FAILED, InstanceState.STOPPED, InstanceState.STOPPING):
            return
        if self.restart_at is not None:
            if now >= self.restart_at and may_start:
                self.restarts += 1
                self.start()
            return
        if self.handle is None:
            return
        code = self.handle.exit_code()
        if code is not None:
            self.handle = None
            if self.restarts >= self.policy.max_restarts:
                output = self.last_lines()
                self._give_up(
                    f"exited with code {code}; gave up after {self.restarts} restart(s)"
                    + (f"; its last output:\n{output}" if output else "")
                )
            else:
                self.error = f"exited with code {code}; restarting"
                self.state = InstanceState.STARTING
                self.restart_at = now + self.policy.backoff * 2**self.restarts
            return
        if self.state is InstanceState.STARTING and (
            listening(self.host, self.port) or now - self.started_at >= self.policy.ready_after
        ):
            self.state = InstanceState.RUNNING
            self.error = None

    def signal(self, sig: signal.Signals) -> None:
        if self.handle is not None:
            self.handle.signal(sig)

    def wait_stopped(self, deadline: float) -> None:
        """After SIGTERM: wait until ``deadline``, then SIGKILL the whole workload."""
        if self.handle is not None:
            if not self.handle.wait(deadline - time.monotonic()):
                self.handle.signal(signal.SIGKILL)
                self.handle.wait(30.0)
            self.handle = None
        self.restart_at = None

    def _give_up(self, error: str) -> None:
        self.handle = None
        self.state = InstanceState.FAILED
        self.error = error
        self.restart_at = None


def stop_all(runners: list[Runner], grace: float) -> None:
    """SIGTERM every runner at once, then wait for all within one shared grace period."""
    for runner in runners:
        runner.signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for runner in runners:
        runner.wait_stopped(deadline)


def probe_host(host: str) -> str:
    """Where to check a listener bound to ``host``: a wildcard is checked on loopback."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((probe_host(host), port), timeout=0.05):
            return True
    except OSError:
        return False
