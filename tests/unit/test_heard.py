"""What the views say about a node's last heartbeat: late from the first missed one."""

from __future__ import annotations

from datetime import timedelta

from takeover.domain.heard import Heard, heard
from takeover.domain.models import NodeStatus
from tests.unit.factories import T0


def test_live_late_silent_and_offline_with_the_age() -> None:
    def at(seconds: float, status: NodeStatus = NodeStatus.ONLINE) -> tuple[Heard, float | None]:
        return heard(status, T0, T0 + timedelta(seconds=seconds), interval=30, fence_after=75)

    assert at(30) == (Heard.LIVE, 30.0)
    assert at(45) == (Heard.LIVE, 45.0)  # a slow heartbeat is not a missed one
    assert at(46) == (Heard.LATE, 46.0)
    assert at(75) == (Heard.LATE, 75.0)
    assert at(76) == (Heard.SILENT, 76.0)
    assert at(10, NodeStatus.OFFLINE) == (Heard.OFFLINE, 10.0)
    assert at(-5) == (Heard.LIVE, 0.0)  # a replica's clock a little behind the stamp
    assert heard(NodeStatus.ONLINE, None, T0, 30, 75) == (Heard.SILENT, None)
