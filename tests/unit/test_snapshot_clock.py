"""Snapshots stay in the order they were taken when the clock that stamps them steps back, and
the one just taken is never pruned; the agent stamps by the control plane's clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from takeover.agent.cpclock import ControlPlaneClock
from takeover.snapshots import SnapshotRepository
from takeover.snapshots.objects import DirectoryStore

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


class SteppingClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def test_a_clock_stepped_back_neither_reorders_nor_prunes_new_snapshots(tmp_path: Path) -> None:
    clock = SteppingClock()
    repo = SnapshotRepository(DirectoryStore(tmp_path / "store"), keep=3, clock=clock)
    workspace = tmp_path / "ws"
    workspace.mkdir()
    taken = []
    for n in range(6):
        (workspace / "count").write_text(str(n))
        if n == 3:
            clock.now -= timedelta(seconds=30)  # NTP steps the node's clock back
        taken.append(repo.take(workspace, "i", epoch=1).manifest.id)
    kept = [r.id for r in repo.refs("i")]
    assert kept == taken[-3:]  # the three newest, in the order they were taken
    restored = repo.restore("i", 2, tmp_path / "restored")
    assert restored.manifest is not None
    assert restored.manifest.id == taken[-1]
    assert (tmp_path / "restored" / "count").read_text() == "5"


def test_the_control_plane_s_clock_moves_with_this_machine_s_monotonic_clock() -> None:
    mono = [100.0]
    clock = ControlPlaneClock(monotonic=lambda: mono[0], wall=lambda: T0 - timedelta(hours=1))
    assert clock.now() == T0 - timedelta(hours=1)  # no reply yet: the node's own clock
    clock.observe(T0, sent=99.0, received=101.0)  # the server's reading is of the middle: 100.0
    mono[0] = 130.5
    assert clock.now() == T0 + timedelta(seconds=30.5)
    clock.observe(None, sent=130.0, received=131.0)  # an older control plane sends no time
    assert clock.now() == T0 + timedelta(seconds=30.5)
