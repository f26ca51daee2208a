"""The process adapter of the runtime port: the workload is the agent's child.

Children get PR_SET_PDEATHSIG: if the agent dies, so do they. A node whose agent is gone can
no longer fence itself, so its workloads must not outlive it (one runner per instance).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
from pathlib import Path

from takeover.agent.runtime import Handle, Launch, LaunchError, Leftover

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class ProcessHandle:
    def __init__(self, proc: subprocess.Popen[bytes], log_path: Path) -> None:
        self._proc = proc
        self._log_path = log_path

    @property
    def log_path(self) -> Path:
        return self._log_path

    def exit_code(self) -> int | None:
        return self._proc.poll()

    def signal(self, sig: signal.Signals) -> None:
        if self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, sig)  # its own session: the whole group

    def wait(self, timeout: float) -> bool:
        try:
            self._proc.wait(timeout=max(0.0, timeout))
        except subprocess.TimeoutExpired:
            return False
        return True


class ProcessRuntime:
    name = "process"

    def start(self, launch: Launch) -> Handle:
        env = {**os.environ, **launch.env}
        launch.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(launch.log_path, "ab") as log:
                proc = subprocess.Popen(
                    list(launch.command),
                    cwd=launch.workspace,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,  # noqa: PLW1509  (only the main thread spawns)
                )
        except FileNotFoundError:
            raise LaunchError(f"command not found: {launch.command[0]}") from None
        except PermissionError:
            raise LaunchError(f"command not executable: {launch.command[0]}") from None
        return ProcessHandle(proc, launch.log_path)

    def resolve(self, image: str, digest: str | None) -> tuple[str, str]:  # noqa: ARG002 - the Runtime port
        raise LaunchError("this node runs no containers (set NODE_CONTAINER_RUNTIME to podman or docker)")

    def leftovers(self, node: str) -> list[Leftover]:  # noqa: ARG002 - the Runtime port
        return []  # they died with the agent that started them

    def adopt(self, leftover: Leftover, log_path: Path) -> Handle:  # noqa: ARG002 - the Runtime port
        raise LaunchError("processes cannot be adopted")

    def remove(self, leftover: Leftover) -> None:  # noqa: ARG002 - the Runtime port
        return None

    def decode_log(self, data: bytes) -> str:
        return data.decode("utf-8", "replace")
