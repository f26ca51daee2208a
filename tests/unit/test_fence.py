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
    assert not deadline_passed(tmp_path / "fence", 53.0)
    assert deadline_passed(tmp_path / "fence", 53.001)


def test_a_heartbeat_never_waits_past_the_deadline(tmp_path: Path) -> None:
    clock = Clock()
    fence = Fence(tmp_path / "fence", clock)
    assert fence.request_timeout(5.0, sent=0.0) == 5.0
    fence.acknowledged(sent=10.0, fence_after=3.0)
    clock.now = 11.0
    assert fence.request_timeout(5.0, sent=11.0) == 2.0
    clock.now = 12.95
    assert fence.request_timeout(5.0, sent=12.95) == 0.2  # a floor: the request can still be made
    fence.vouch(30.0)  # past its own deadline, kept by witnesses: it asks as often as it probes them
    clock.now = 14.0
    assert fence.beat_every(5.0) == 1.25
    assert fence.request_timeout(5.0, sent=14.0) == 1.25


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
    assert read_deadline(tmp_path / "fence") == (52.0, 0.25)  # the keepers use the same grace


def test_after_a_fence_work_starts_again_only_once_acknowledgements_settle(tmp_path: Path) -> None:
    """A starved agent's replies come now and then: its instances must not be killed and started
    again at every gap, so after a fence the node is live only after a fence_after of acks."""
    clock = Clock()
    fence = Fence(tmp_path / "fence", clock)
    fence.acknowledged(sent=99.0, fence_after=2.0)
    assert fence.live()  # never fenced: live at the first acknowledgement
    clock.now = 101.5
    assert fence.due()
    assert fence.acknowledged(sent=101.6, fence_after=2.0)  # lifted...
    assert not fence.live()  # ...but nothing starts yet
    clock.now = 102.6
    fence.acknowledged(sent=102.6, fence_after=2.0)
    assert not fence.live()
    clock.now = 103.6
    fence.acknowledged(sent=103.6, fence_after=2.0)
    assert fence.live()  # acknowledged all along for fence_after since the fence lifted


def test_a_new_fence_during_the_settling_starts_the_wait_again(tmp_path: Path) -> None:
    clock = Clock()
    fence = Fence(tmp_path / "fence", clock)
    fence.acknowledged(sent=99.0, fence_after=2.0)
    clock.now = 101.5
    assert fence.due()
    fence.acknowledged(sent=101.5, fence_after=2.0)
    clock.now = 103.6  # no acknowledgement since 101.5: its deadline passed
    assert fence.due()
    fence.acknowledged(sent=103.7, fence_after=2.0)
    clock.now = 104.0
    assert not fence.live()
    clock.now = 105.7
    fence.acknowledged(sent=105.7, fence_after=2.0)
    assert not fence.live()  # a second fence within ten fence_after: twice the wait
    clock.now = 107.7
    fence.acknowledged(sent=107.7, fence_after=2.0)
    assert fence.live()


def test_fences_in_a_row_back_off_up_to_four_fence_afters(tmp_path: Path) -> None:
    clock = Clock()
    fence = Fence(tmp_path / "fence", clock)
    fence.acknowledged(sent=100.0, fence_after=2.0)
    waits = []
    for _ in range(4):
        clock.now = fence.deadline + 0.01  # type: ignore[operator]
        assert fence.due()
        fence.acknowledged(sent=clock.now, fence_after=2.0)
        assert fence.settles_at is not None
        waits.append(round(fence.settles_at - clock.now, 2))
    assert waits == [2.0, 4.0, 8.0, 8.0]
    clock.now += 21  # ten fence_after after the last fence: forgotten
    assert fence.settling() == 2.0


def test_a_late_acknowledgement_while_settling_starts_the_wait_again(tmp_path: Path) -> None:
    """Replies that keep coming, but late (a starved agent): the node does not turn live."""
    clock = Clock()
    fence = Fence(tmp_path / "fence", clock)
    fence.acknowledged(sent=99.0, fence_after=2.0, interval=0.5)
    clock.now = 101.5
    assert fence.due()
    fence.acknowledged(sent=101.5, fence_after=2.0, interval=0.5)  # settles at 103.5...
    clock.now = 102.5
    fence.acknowledged(sent=102.5, fence_after=2.0, interval=0.5)  # ...but this came 1 s later
    clock.now = 103.6
    fence.acknowledged(sent=103.0, fence_after=2.0, interval=0.5)
    assert not fence.live()
    clock.now = 104.5
    for sent in (103.5, 104.0, 104.5):
        fence.acknowledged(sent=sent, fence_after=2.0, interval=0.5)
    assert fence.live()  # steady since 102.5, for fence_after


def test_a_loop_that_comes_round_late_while_settling_starts_the_wait_again(tmp_path: Path) -> None:
    """Heartbeats every interval on the dot, but the agent runs a few ms a second (CFS quota)."""
    clock = Clock()
    fence = Fence(tmp_path / "fence", clock)
    fence.acknowledged(sent=99.0, fence_after=2.0, interval=1.0)
    clock.now = 101.5
    assert fence.due()
    fence.acknowledged(sent=101.5, fence_after=2.0, interval=1.0)
    fence.ticked(1.0)
    for now in (102.5, 103.5):  # each tick a second after the last one: starved
        clock.now = now
        fence.ticked(1.0)
        fence.acknowledged(sent=now, fence_after=2.0, interval=1.0)
    assert not fence.live()  # 103.5 >= 101.5 + 2, but the loop was late all along
    while clock.now < 105.6:
        clock.now += 0.1
        fence.ticked(1.0)
        fence.acknowledged(sent=clock.now, fence_after=2.0, interval=1.0)
    assert fence.live()


def test_witnesses_vouching_keep_instances_past_the_deadline_but_start_nothing(tmp_path: Path) -> None:
    clock = Clock()
    fence = Fence(tmp_path / "fence", clock)
    fence.vouch(500.0)  # nothing acknowledged yet: nothing to keep running
    assert fence.deadline is None
    fence.acknowledged(sent=99.0, fence_after=2.0)
    fence.vouch(104.0)
    assert fence.deadline == 104.0
    assert not deadline_passed(tmp_path / "fence", 103.9)  # the keepers follow the vouch
    clock.now = 102.0
    assert not fence.due()
    assert not fence.live()  # past the control plane's own deadline: nothing new starts
    fence.vouch(103.0)  # an older vouch never shortens it
    assert fence.deadline == 104.0
    clock.now = 104.01
    assert fence.due()
    fence.vouch(200.0)  # fenced: only the control plane lifts it
    assert fence.deadline == 104.0
    assert fence.fenced


def test_witnesses_are_asked_only_from_an_interval_before_the_acknowledgement_runs_out(
    tmp_path: Path,
) -> None:
    clock = Clock()
    fence = Fence(tmp_path / "fence", clock)
    assert not fence.wants_vouch(0.5)  # nothing acknowledged: nothing a vouch could extend
    fence.acknowledged(sent=100.0, fence_after=2.0)
    clock.now = 101.49
    assert not fence.wants_vouch(0.5)
    clock.now = 101.5
    assert fence.wants_vouch(0.5)
    clock.now = 102.01
    assert fence.due()
    assert not fence.wants_vouch(0.5)  # fenced: only the control plane lifts it, no vouch helps
