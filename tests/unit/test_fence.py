"""The node's fence on an injected clock, and the keeper's reading of its deadline file."""

from __future__ import annotations

from pathlib import Path

from takeover.agent.fence import Fence
from takeover.agent.keeper import deadline_passed, read_deadline, write_deadline
from takeover.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_fence_falls_once_at_the_deadline_of_the_last_acknowledged_send(tmp_path: Path) -> None:
    clock = Clock()
    fence = Fence(tmp_path / "fence", clock)
    assert not fence.due()  # nothing acknowledged yet: nothing to fence
    fence.acknowledged(sent=99.0, fence_after=2.0)
    clock.now = 101.0
    assert not fence.due()
    clock.now = 101.01
    assert fence.due()
    assert not fence.due()  # once
    assert fence.acknowledged(sent=101.5, fence_after=2.0)  # lifted by a newer acknowledgement
    assert not fence.fenced


def test_a_push_may_start_work_only_before_the_deadline_of_an_acknowledged_heartbeat(tmp_path: Path) -> None:
    clock = Clock()
    fence = Fence(tmp_path / "fence", clock)
    assert not fence.live()  # no heartbeat acknowledged yet
    fence.acknowledged(sent=99.0, fence_after=2.0)
    assert fence.live()
    clock.now = 101.01  # past the deadline, before the loop fenced
    assert not fence.live()
    assert fence.due()
    clock.now = 101.0  # even if the clock is read earlier again: fenced stays fenced
    assert not fence.live()


def test_the_deadline_file_is_what_the_keepers_read(tmp_path: Path) -> None:
    fence = Fence(tmp_path / "fence", Clock())
    fence.acknowledged(sent=50.0, fence_after=3.0)
    assert not deadline_passed(fence.path, 53.0)
    assert deadline_passed(fence.path, 53.001)


def test_a_heartbeat_never_waits_past_the_deadline(tmp_path: Path) -> None:
    fence = Fence(tmp_path / "fence", Clock())
    assert fence.request_timeout(5.0, sent=0.0) == 5.0
    fence.acknowledged(sent=10.0, fence_after=3.0)
    assert fence.request_timeout(5.0, sent=11.0) == 2.0
    assert fence.request_timeout(5.0, sent=12.95) == 0.2  # a floor: the request can still be made


def test_a_missing_or_damaged_deadline_counts_as_passed(tmp_path: Path) -> None:
    path = tmp_path / "fence"
    assert deadline_passed(path, 0.0)
    path.write_text("not a number")
    assert deadline_passed(path, 0.0)
    write_deadline(path, 10.0)
    assert not deadline_passed(path, 9.0)


def test_the_kill_grace_fits_in_the_fence_margin(tmp_path: Path) -> None:
    """A workload that ignores SIGTERM is killed before offline_after, whatever the margin."""
    assert (
        Settings(fence_margin=0.5, fence_after=2, offline_after=3, heartbeat_interval=1).fence_grace == 0.25
    )
    assert Settings().fence_grace == 1.0  # the default margin (10 s) allows the full second
    fence = Fence(tmp_path / "fence", Clock())
    fence.acknowledged(sent=50.0, fence_after=2.0, grace=0.25)
    assert read_deadline(fence.path) == (52.0, 0.25)  # the keepers use the same grace
