"""A container's keeper: stops it once the node's fence deadline passes (one runner per instance).

The agent fences itself by stopping its instances when no heartbeat has been acknowledged for
``fence_after``; the control plane starts a copy elsewhere only after ``offline_after``, which
exceeds it by a margin. A process workload dies with the agent; a container does not, so this
process, started beside each container in a session of its own, enforces the same deadline when
the agent cannot: killed, hung, or partitioned. It sleeps until the deadline, so it costs
next to nothing while the agent keeps renewing it. The agent writes the deadline (CLOCK_MONOTONIC,
shared by every process of the machine) to one file per node after each acknowledged heartbeat;
a missing or unreadable file counts as passed. The keeper signals the container's init
directly, as the agent would: SIGTERM, then SIGKILL after the grace. It exits when the container
ends.

    python -m takeover.agent.keeper FENCE_FILE PID CREATE_TIME GRACE NAME
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import psutil

_CHECK = 1.0  # seconds between looks at a far deadline (and whether the container still runs)
_PAST = 0.001  # wake just after the deadline, not just before it


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


def keep(fence_file: Path, proc: psutil.Process, grace: float) -> bool:
    """Until the container ends (False) or the deadline passes and it is stopped (True).

    It sleeps until the deadline it last read (at most ``_CHECK`` s) and reads it again: the
    agent only moves it later, so waking at the old one is never late.
    """
    while proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
        now = time.monotonic()
        found = read_deadline(fence_file)
        if found is not None:
            deadline, grace = found  # the control plane's grace, as the agent last heard it
        if found is None or now > deadline:
            proc.terminate()
            try:
                proc.wait(grace)
            except psutil.TimeoutExpired:
                proc.kill()
            return True
        time.sleep(min(deadline - now + _PAST, _CHECK))
    return False


def main(argv: list[str]) -> int:
    fence_file, pid, created, grace = Path(argv[0]), int(argv[1]), float(argv[2]), float(argv[3])
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - created) > 0.01:
            return 0  # that container is gone and its pid reused: nothing of ours to keep
        keep(fence_file, proc, grace)
    except psutil.NoSuchProcess:
        pass
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main(sys.argv[1:]))
