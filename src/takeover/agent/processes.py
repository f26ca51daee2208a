"""The process adapter of the runtime port: the workload is the agent's child.

Children get PR_SET_PDEATHSIG: if the agent dies, so do they. A node whose agent is gone can
no longer fence itself, so its workloads must not outlive it (one runner per instance). An agent
that is hung or starved is not gone: each workload has a keeper (agent/keeper.py) that stops its
whole process group at the node's fence deadline unless the agent renews it.

A workload's environment is built from nothing: its spec's variables and the instance's
(``Launch.env``), the node's locale and search path, and its user's identity. Nothing else of the
agent's (its tokens, its S3 keys) reaches it. With ``run_as`` (NODE_RUN_AS) it runs as another
user, who owns its workspace and cannot read the agent's files or ``/proc/<agent>/environ``.
"""

from __future__ import annotations

import contextlib
import ctypes
import grp
import os
import pwd
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psutil

from takeover.agent.keeper import Kept, start_keeper
from takeover.agent.runtime import Handle, Launch, LaunchError, Leftover

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class ProcessHandle:
    def __init__(
        self, proc: subprocess.Popen[bytes], log_path: Path, keeper: subprocess.Popen[bytes] | None
    ) -> None:
        self._proc = proc
        self._log_path = log_path
        self._keeper = keeper

    @property
    def log_path(self) -> Path:
        return self._log_path

    def exit_code(self) -> int | None:
        code = self._proc.poll()
        if code is not None:
            self._end_keeper()
        return code

    def _end_keeper(self) -> None:
        """Its watch is over: stopped and reaped (the agent's child, else a zombie)."""
        if self._keeper is not None:
            self._keeper.terminate()
            self._keeper.wait()
            self._keeper = None

    def signal(self, sig: signal.Signals) -> None:
        if self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, sig)  # its own session: the whole group

    def wait(self, timeout: float) -> bool:
        try:
            self._proc.wait(timeout=max(0.0, timeout))
        except subprocess.TimeoutExpired:
            return False
        self._end_keeper()
        return True


NODE_VARIABLES = ("PATH", "LANG", "LANGUAGE", "LC_ALL", "TZ")  # the node's, passed on when set
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True, slots=True)
class RunAs:
    """The user (and group) workloads run as, instead of the agent's."""

    uid: int
    gid: int

    @classmethod
    def parse(cls, text: str) -> RunAs:
        """``user`` or ``user:group``, names or numbers; LaunchError names what does not exist."""
        user, _, group = text.partition(":")
        try:
            entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
        except KeyError:
            raise LaunchError(f"NODE_RUN_AS: no user {user!r} on this node") from None
        gid = entry.pw_gid
        if group:
            try:
                gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
            except KeyError:
                raise LaunchError(f"NODE_RUN_AS: no group {group!r} on this node") from None
        if os.geteuid() != 0 and entry.pw_uid != os.geteuid():
            raise LaunchError("NODE_RUN_AS: only an agent running as root runs workloads as another user")
        return cls(entry.pw_uid, gid)


def workload_env(launch_env: dict[str, str], uid: int, passed: tuple[str, ...] = ()) -> dict[str, str]:
    """What a workload's environment holds (see the module's docstring), with the node's
    variables the operator ``passed`` on (NODE_PASS_ENV, e.g. LD_LIBRARY_PATH for CUDA); the
    spec's wins over the node's, the instance's over both."""
    env = {name: os.environ[name] for name in (*NODE_VARIABLES, *passed) if name in os.environ}
    env.setdefault("PATH", _DEFAULT_PATH)
    try:
        entry = pwd.getpwuid(uid)
        env |= {"HOME": entry.pw_dir, "USER": entry.pw_name, "LOGNAME": entry.pw_name}
    except KeyError:
        pass  # a uid without a name: no HOME to give
    return env | launch_env


def give_workspace(workspace: Path, run_as: RunAs) -> None:
    """The workspace and everything in it belong to the workload's user (a restore wrote it as
    the agent's)."""
    for folder, dirs, files in os.walk(workspace):
        for name in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
            if os.lstat(name).st_uid != run_as.uid:
                os.lchown(name, run_as.uid, run_as.gid)


class ProcessRuntime:
    name = "process"

    def __init__(
        self,
        run_as: RunAs | None = None,
        passed: tuple[str, ...] = (),
        fence_path: Path | None = None,
        fence_grace: float = 1.0,
    ) -> None:
        """``fence_path``: the node's deadline file, for the keeper each workload gets (None: no
        keeper, for a runtime used without an agent)."""
        self.run_as = run_as
        self.passed = passed
        self.fence_path = fence_path
        self.fence_grace = fence_grace

    def start(self, launch: Launch) -> Handle:
        run_as = self.run_as
        env = workload_env(launch.env, run_as.uid if run_as else os.getuid(), self.passed)
        launch.log_path.parent.mkdir(parents=True, exist_ok=True)
        if run_as is not None:
            give_workspace(launch.workspace, run_as)
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
                    user=run_as.uid if run_as else None,
                    group=run_as.gid if run_as else None,
                    extra_groups=[] if run_as else None,
                )
        except FileNotFoundError:
            raise LaunchError(f"command not found: {launch.command[0]}") from None
        except PermissionError as exc:
            where = exc.filename or launch.command[0]
            raise LaunchError(f"cannot start {launch.command[0]}: permission denied on {where}") from None
        keeper = None
        if self.fence_path is not None:
            kept = Kept(proc.pid, group=True, epoch_file=launch.epoch_file, epoch=launch.epoch)
            with contextlib.suppress(psutil.NoSuchProcess):  # it ended already: nothing to keep
                keeper = start_keeper(
                    self.fence_path, psutil.Process(proc.pid), self.fence_grace, launch.instance_id, kept
                )
        return ProcessHandle(proc, launch.log_path, keeper)

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
