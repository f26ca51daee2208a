"""What a person should be told about when a node was last heard from.

A node stays ``online`` until the monitor declares it offline after ``offline_after`` (two
minutes by default); showing it green all that while hides an outage in progress. So the views
say ``late`` from the first missed heartbeat, and ``silent`` once its agent would have fenced
(``fence_after``), each with the age. Display only: decisions use the leader's own watch
(domain/liveness.py), never these wall-clock ages.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from takeover.domain.models import NodeStatus

LATE_AFTER = 1.5  # heartbeat intervals: one missed, with room for a slow one


class Heard(StrEnum):
    LIVE = "live"
    LATE = "late"  # a heartbeat missed: its agent may well still run its instances
    SILENT = "silent"  # past fence_after: stopped by its own fence, or vouched for by its witnesses
    OFFLINE = "offline"


def heard(
    status: NodeStatus, last: datetime | None, now: datetime, interval: float, fence_after: float
) -> tuple[Heard, float | None]:
    """How it was heard from, and how many seconds ago (None: never)."""
    age = None if last is None else max(0.0, (now - last).total_seconds())
    if status is NodeStatus.OFFLINE:
        return Heard.OFFLINE, age
    if age is None or age > fence_after:
        return Heard.SILENT, age
    if age > LATE_AFTER * interval:
        return Heard.LATE, age
    return Heard.LIVE, age
