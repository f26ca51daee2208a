"""One supervised instance process: start, readiness, restarts with backoff, stop by process group.

Children get PR_SET_PDEATHSIG: if the agent dies, so do they. A node whose agent is gone can
no longer fence itself, so its workloads must not outlive it (one runner per instance).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from takeover.domain.models import InstanceSpec, InstanceState

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


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
    state: InstanceState = InstanceState.STARTING
    error: str | None = None
    warning: str | None = None  # lasts for this runner: e.g. newer snapshots refused as corrupt
    restored_from: str | None = None
    last_snapshot: str | None = None
    restarts: int = 0
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    released: bool = False  # a handover: stop, take a final snapshot, report stopped
    on_volume: bool = False  # the workspace is a regional volume: no snapshots, no restores
    snapshot_request: str | None = None  # the control plane's latest on-demand request
    snapshot_served: str | None = None  # the request the last snapshot answered
    extra_env: dict[str, str] = field(default_factory=dict)
    log_shipped: int = 0  # bytes of log_path the control plane has acknowledged

    def unsent_log(self, most: int) -> tuple[str, int]:
        """Output not yet shipped, at most ``most`` bytes cut at a line end where one is, and
        where it ends. NUL bytes become U+FFFD: the API refuses NUL in text."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self.log_shipped)
                data = log.read(most)
        except FileNotFoundError:
            return "", self.log_shipped
        if len(data) == most and b"\n" in data:
            data = data[: data.rindex(b"\n") + 1]
        text = data.decode("utf-8", "replace").replace("\x00", "\ufffd")
        return text, self.log_shipped + len(data)

    def start(self) -> None:
        env = {
            **os.environ,
            **self.spec.env,
            **self.extra_env,
            "PORT": str(self.port),
            "TAKEOVER_INSTANCE_ID": self.instance_id,
            "TAKEOVER_EPOCH": str(self.epoch),
            "TAKEOVER_WORKSPACE": str(self.workspace),
        }
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    list(self.spec.command),
                    cwd=self.workspace,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,  # noqa: PLW1509  (only the main thread spawns)
                )
        except FileNotFoundError:
            self._give_up(f"command not found: {self.spec.command[0]}")
            return
        except PermissionError:
            self._give_up(f"command not executable: {self.spec.command[0]}")
            return
        self.state = InstanceState.STARTING
        self.started_at = time.monotonic()
        self.restart_at = None

    def supervise(self, now: float) -> None:
        """Notice exits (restart or give up) and readiness; called every loop tick."""
        if self.state in (InstanceState.FAILED, InstanceState.STOPPED, InstanceState.STOPPING):
            return
        if self.restart_at is not None:
            if now >= self.restart_at:
                self.restarts += 1
                self.start()
            return
        if self.proc is None:
            return
        code = self.proc.poll()
        if code is not None:
            self.proc = None
            if self.restarts >= self.policy.max_restarts:
                self._give_up(f"exited with code {code}; gave up after {self.restarts} restart(s)")
            else:
                self.error = f"exited with code {code}; restarting"
                self.state = InstanceState.STARTING
                self.restart_at = now + self.policy.backoff * 2**self.restarts
            return
        if self.state is InstanceState.STARTING and (
            _listening(self.port) or now - self.started_at >= self.policy.ready_after
        ):
            self.state = InstanceState.RUNNING
            self.error = None

    def signal(self, sig: signal.Signals) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def wait_stopped(self, deadline: float) -> None:
        """After SIGTERM: wait until ``deadline``, then SIGKILL the whole process group."""
        if self.proc is not None:
            try:
                self.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.proc.wait()
            self.proc = None
        self.restart_at = None

    def _give_up(self, error: str) -> None:
        self.proc = None
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


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.05):
            return True
    except OSError:
        return False
