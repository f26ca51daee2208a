"""The node's fence: how long this agent may keep running instances without an acknowledgement.

A heartbeat's acknowledgement proves the control plane still counts this node as alive as of
when the heartbeat was *sent*; ``fence_after`` later, without a newer one, the agent must have
stopped everything (the control plane waits ``offline_after`` > ``fence_after`` + margin before
it starts copies elsewhere). The deadline is also written for the containers' keepers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from takeover.agent.keeper import write_deadline


class Fence:
    def __init__(self, path: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.clock = clock
        self.last_ok: float | None = None  # when the last acknowledged heartbeat was sent
        self.fence_after: float | None = None  # learnt from the first reply
        self.grace = 1.0  # SIGTERM to SIGKILL when fencing: the control plane's, from each reply
        self.fenced = False

    @property
    def deadline(self) -> float | None:
        if self.last_ok is None or self.fence_after is None:
            return None
        return self.last_ok + self.fence_after

    def acknowledged(self, sent: float, fence_after: float, grace: float = 1.0) -> bool:
        """A reply to a heartbeat sent at ``sent``; True when it lifts the fence."""
        self.last_ok, self.fence_after, self.grace = sent, fence_after, grace
        write_deadline(self.path, sent + fence_after, grace)
        lifted, self.fenced = self.fenced, False
        return lifted

    def live(self) -> bool:
        """Whether work may start now: before the deadline of an acknowledged heartbeat. A push
        between heartbeats may start instances only then, since it acknowledges nothing."""
        deadline = self.deadline
        return not self.fenced and deadline is not None and self.clock() <= deadline

    def due(self) -> bool:
        """True once, when the deadline has passed: stop every instance now."""
        deadline = self.deadline
        if self.fenced or deadline is None or self.clock() <= deadline:
            return False
        self.fenced = True
        return True

    def request_timeout(self, interval: float, sent: float) -> float:
        """A heartbeat's timeout: never past the deadline, so no late reply keeps instances alive."""
        deadline = self.deadline
        if self.fenced or deadline is None:
            return interval
        return max(0.2, min(interval, deadline - sent))
