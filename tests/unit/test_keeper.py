"""The keeper on real processes: the fence deadline, and a regional volume's epoch."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import psutil

from takeover.agent.keeper import EPOCH_FILE, Kept, claim_volume, keep, volume_epoch, write_deadline


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "30"], start_new_session=True)


def test_a_runner_claims_its_volume_unless_a_newer_epoch_holds_it(tmp_path: Path) -> None:
    epoch_file = tmp_path / EPOCH_FILE
    assert volume_epoch(epoch_file) == 0
    assert claim_volume(epoch_file, 3) is None
    assert volume_epoch(epoch_file) == 3
    assert claim_volume(epoch_file, 2) == 3  # a stale runner may not start on it
    assert volume_epoch(epoch_file) == 3
    assert claim_volume(epoch_file, 3) is None  # the same runner, started again
    epoch_file.write_text("garbage")
    assert volume_epoch(epoch_file) == 0


def test_the_keeper_stops_a_runner_whose_volume_a_newer_epoch_holds(tmp_path: Path) -> None:
    fence, epoch_file = tmp_path / "fence", tmp_path / EPOCH_FILE
    write_deadline(fence, time.monotonic() + 600, grace=0.5)  # the agent renews it: no deadline near
    claim_volume(epoch_file, 1)
    proc = sleeper()
    try:
        epoch_file.write_text("2")  # a copy at epoch 2 started on another node
        began = time.monotonic()
        assert keep(fence, psutil.Process(proc.pid), 0.5, Kept(proc.pid, True, epoch_file, 1))
        assert time.monotonic() - began < 1.0
        assert proc.wait(5) is not None
    finally:
        proc.kill()
        proc.wait()


def test_the_keeper_stops_a_process_group_at_the_deadline_and_not_before(tmp_path: Path) -> None:
    fence = tmp_path / "fence"
    proc = subprocess.Popen(["sh", "-c", "sleep 30 & sleep 30"], start_new_session=True)
    try:
        child = wait_for_child(proc.pid)
        write_deadline(fence, time.monotonic() + 0.5, grace=0.2)
        began = time.monotonic()
        assert keep(fence, psutil.Process(proc.pid), 0.2, Kept(proc.pid, group=True))
        assert time.monotonic() - began >= 0.5
        proc.wait(5)
        _, alive = psutil.wait_procs([child], timeout=5)  # signalled: gone once it is scheduled
        assert alive == []  # the whole group
    finally:
        proc.kill()
        proc.wait()


def wait_for_child(pid: int) -> psutil.Process:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        children = psutil.Process(pid).children()
        if children:
            return children[0]
        time.sleep(0.01)
    raise AssertionError("the shell started no child")
