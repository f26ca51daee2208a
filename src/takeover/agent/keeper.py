"""A workload's keeper: stops it once the node's fence deadline passes (one runner per instance).

The agent fences itself by stopping its instances when no heartbeat has been acknowledged for
``fence_after``; the control plane starts a copy elsewhere only after ``offline_after``, which
exceeds it by a margin. An agent that is killed, hung (SIGSTOP, a deadlock, a read stuck on a
dead NFS server), starved of CPU or cut off cannot be trusted to do that itself, so this process,
started beside each workload (a container's init, or a process's whole group) in a session of its
own, enforces the same deadline whatever the agent does. It sleeps until the deadline, so it
costs next to nothing while the agent keeps renewing it. The agent writes the deadline
(CLOCK_MONOTONIC, shared by every process of the machine) to one file per node after each
acknowledged heartbeat; a missing or unreadable file counts as passed. The keeper signals the
workload as the agent would: SIGTERM, then SIGKILL after the grace. It exits when the workload
ends.

A workload on a regional volume has a second fence, at the data: each runner writes its epoch
into the volume (``.takeover-epoch``) before it starts, and its keeper stops it as soon as a newer
epoch is there, whatever the clocks say.

    python -m takeover.agent.keeper FENCE_FILE PID CREATE_TIME GRACE NAME [--group]
        [--volume EPOCH_FILE EPOCH]
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

_CHECK = 1.0  # seconds between looks at a far deadline (and whether the workload still runs)
_VOLUME_CHECK = 0.1  # seconds between looks at a volume's epoch
_PAST = 0.001  # wake just after the deadline, not just before it
EPOCH_FILE = ".takeover-epoch"  # in a regional volume: the newest epoch that ran on it


def read_deadline(fence_file: Path) -> tuple[float, float] | None:
    """(deadline, SIGTERM-to-SIGKILL grace), or None when the file is missing or unreadable
    (which counts as passed)."""
    try:
        deadline, grace = fence_file.read_text().split()
        return float(deadline), float(grace)
    except (OSError, ValueError):
        return None


def deadline_passed(fence_file: Path, now: float) -> bool:
    found = read_deadline(fence_file)
    return found is None or now > found[0]


def write_deadline(fence_file: Path, deadline: float, grace: float = 1.0) -> None:
    """Atomically: a keeper never reads half a number."""
    tmp = fence_file.with_name(fence_file.name + ".tmp")
    tmp.write_text(f"{deadline!r} {grace!r}")
    tmp.replace(fence_file)


def volume_epoch(epoch_file: Path) -> int:
    """The newest epoch that started on a volume (0: none yet, or unreadable)."""
    try:
        return int(epoch_file.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def claim_volume(epoch_file: Path, epoch: int) -> int | None:
    """Write ``epoch`` as the volume's holder before a runner starts on it; the newer epoch that
    holds it instead, if there is one (then this runner must not start)."""
    held = volume_epoch(epoch_file)
    if held > epoch:
        return held
    tmp = epoch_file.with_name(f"{epoch_file.name}.{epoch}.tmp")
    with open(tmp, "w") as file:
        file.write(str(epoch))
        file.flush()
        os.fsync(file.fileno())
    tmp.replace(epoch_file)
    return None


@dataclass(frozen=True, slots=True)
class Kept:
    """What a keeper watches: ``pid`` (the whole group with ``group``), and on a volume the
    epoch file and the runner's own epoch."""

    pid: int
    group: bool = False
    epoch_file: Path | None = None
    epoch: int = 0


def keep(fence_file: Path, proc: psutil.Process, grace: float, kept: Kept | None = None) -> bool:
    """Until the workload ends (False) or a fence falls and it is stopped (True).

    It sleeps until the deadline it last read (at most ``_CHECK`` s) and reads it again: the
    agent only moves it later, so waking at the old one is never late.
    """
    kept = kept or Kept(proc.pid)
    while proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
        now = time.monotonic()
        found = read_deadline(fence_file)
        if found is not None:
            grace = found[1]  # the control plane's grace, as the agent last heard it
        superseded = kept.epoch_file is not None and volume_epoch(kept.epoch_file) > kept.epoch
        if found is None or now > found[0] or superseded:
            _stop(proc, kept, grace)
            return True
        pause = min(found[0] - now + _PAST, _CHECK)
        time.sleep(min(pause, _VOLUME_CHECK) if kept.epoch_file is not None else pause)
    return False


def _stop(proc: psutil.Process, kept: Kept, grace: float) -> None:
    _signal(proc, kept, signal.SIGTERM)
    try:
        proc.wait(grace)
    except psutil.TimeoutExpired:
        _signal(proc, kept, signal.SIGKILL)
    if kept.group:  # what the group's leader left behind
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(kept.pid, signal.SIGKILL)


def _signal(proc: psutil.Process, kept: Kept, sig: signal.Signals) -> None:
    with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError, PermissionError):
        if kept.group:
            os.killpg(kept.pid, sig)
        else:
            proc.send_signal(sig)


def start_keeper(
    fence_file: Path, proc: psutil.Process, grace: float, name: str, kept: Kept
) -> subprocess.Popen[bytes]:
    """A keeper for ``proc``, in a session of its own so that it outlives the agent; the
    environment without credentials (takeover.secretenv)."""
    from takeover.secretenv import child_env

    args = [str(fence_file), str(proc.pid), repr(proc.create_time()), str(grace), name]
    if kept.group:
        args.append("--group")
    if kept.epoch_file is not None:
        args += ["--volume", str(kept.epoch_file), str(kept.epoch)]
    return subprocess.Popen(
        [sys.executable, "-m", "takeover.agent.keeper", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**child_env(), "PYTHONDONTWRITEBYTECODE": "1"},
    )


def main(argv: list[str]) -> int:
    fence_file, pid, created, grace = Path(argv[0]), int(argv[1]), float(argv[2]), float(argv[3])
    group = "--group" in argv
    epoch_file, epoch = None, 0
    if "--volume" in argv:
        at = argv.index("--volume")
        epoch_file, epoch = Path(argv[at + 1]), int(argv[at + 2])
    with contextlib.suppress(OSError):
        os.nice(-10)  # ahead of the agent and the workloads when the CPU is scarce (as root)
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - created) > 0.01:
            return 0  # that workload is gone and its pid reused: nothing of ours to keep
        keep(fence_file, proc, grace, Kept(pid, group, epoch_file, epoch))
    except psutil.NoSuchProcess:
        pass
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main(sys.argv[1:]))
