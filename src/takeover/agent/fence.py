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
from takeover.domain.witnesses import PROBES


class Fence:
    def __init__(self, path: Path | None, clock: Callable[[], float] = time.monotonic) -> None:
        """``path``: where the keepers read the deadline (None: no keepers, as in the simulation)."""
        self.path = path
        self.clock = clock
        self.last_ok: float | None = None  # when the last acknowledged heartbeat was sent
        self.fence_after: float | None = None  # learnt from the first reply
        self.grace = 1.0  # SIGTERM to SIGKILL when fencing: the control plane's, from each reply
        self.fenced = False
        self.vouched: float | None = None  # until when a quorum of witnesses vouches (domain.witnesses)
        self.settles_at: float | None = None  # after a fence, work starts again only from then
        self._last_tick: float | None = None
        self._fences: list[float] = []  # when it fell, lately

    @property
    def acked_until(self) -> float | None:
        """The control plane's own deadline: only it lets work start."""
        if self.last_ok is None or self.fence_after is None:
            return None
        return self.last_ok + self.fence_after

    @property
    def deadline(self) -> float | None:
        """When everything must have stopped: the acknowledgement's deadline, or later while a
        quorum of witnesses vouches that the control plane is away for all of them."""
        acked = self.acked_until
        if acked is None or self.vouched is None:
            return acked
        return max(acked, self.vouched)

    def wants_vouch(self, interval: float) -> bool:
        """Witnesses are asked only from an interval before the acknowledgement runs out: their
        answers matter only past it. Asked all along, they tripled an agent's CPU on LAN timings
        (four probes an interval to each of three witnesses), and starved agents fence."""
        acked = self.acked_until
        return acked is not None and not self.fenced and self.clock() >= acked - interval

    def beat_every(self, interval: float) -> float:
        """While only its witnesses keep it running, a node asks the control plane as often as it
        asks them: once it is back, every node is acknowledged again well before the witnesses
        acknowledged first stop vouching for the others (a vouch lasts an interval)."""
        acked, now = self.acked_until, self.clock()
        if self.fenced or acked is None or now <= acked:
            return interval
        return interval / PROBES

    def vouch(self, until: float | None) -> None:
        """Witnesses vouch until ``until``. Running instances go on meanwhile; once fenced, only
        the control plane lifts the fence (witnesses never restart anything)."""
        if until is None or self.fenced or self.acked_until is None:
            return
        if self.vouched is None or until > self.vouched:
            self.vouched = until
            if self.path is not None and until > self.acked_until:
                write_deadline(self.path, until, self.grace)

    def acknowledged(
        self, sent: float, fence_after: float, grace: float = 1.0, interval: float | None = None
    ) -> bool:
        """A reply to a heartbeat sent at ``sent``; True when it lifts the fence.

        Lifting it does not make the node live at once: work starts again only after the control
        plane has acknowledged heartbeats at their ``interval`` (a gap of at most 1.5 of it) for
        the settling time (``settling``); a longer gap starts that wait again. A starved agent or
        a flapping link would otherwise have its instances killed and started again at every gap."""
        steady = interval is None or self.last_ok is None or sent - self.last_ok <= 1.5 * interval
        self.last_ok, self.fence_after, self.grace = sent, fence_after, grace
        if self.path is not None:
            write_deadline(self.path, max(sent + fence_after, self.vouched or 0.0), grace)
        lifted, self.fenced = self.fenced, False
        settling = self.settles_at is not None and self.clock() < self.settles_at
        if lifted or (settling and not steady):
            self.settles_at = sent + self.settling()
        return lifted

    def settling(self) -> float:
        """How long acknowledgements must be steady after a fence: ``fence_after``, doubled for
        each other fence within the last ten ``fence_after`` (at most four times it), as
        Kubernetes backs off a crash loop."""
        assert self.fence_after is not None
        recent = [at for at in self._fences if self.clock() - at <= 10 * self.fence_after]
        self._fences = recent
        return float(self.fence_after * 2 ** min(max(len(recent) - 1, 0), 2))

    def ticked(self, interval: float) -> None:
        """The agent's loop came round. One that came round late (by over half a heartbeat
        interval: a starved or stalled agent) starts the settling wait again, however steady
        its heartbeats looked."""
        now, before = self.clock(), self._last_tick
        self._last_tick = now
        if before is None or now - before <= interval / 2 or self.fence_after is None:
            return
        if self.settles_at is not None and before < self.settles_at:  # it may have run out meanwhile
            self.settles_at = now + self.settling()

    def holding(self) -> bool:
        """Fenced, or settling after a fence: the node runs nothing (its heartbeats say so)."""
        return self.fenced or (self.settles_at is not None and self.clock() < self.settles_at)

    def live(self) -> bool:
        """Whether work may start now: before the deadline of an acknowledged heartbeat, and, after
        a fence, once the acknowledgements have settled. A push between heartbeats may start
        instances only then, since it acknowledges nothing."""
        deadline, now = self.acked_until, self.clock()
        settled = self.settles_at is None or now >= self.settles_at
        return not self.fenced and settled and deadline is not None and now <= deadline

    def due(self) -> bool:
        """True once, when the deadline has passed: stop every instance now."""
        deadline = self.deadline
        if self.fenced or deadline is None or self.clock() <= deadline:
            return False
        self.fenced = True
        self._fences.append(self.clock())
        return True

    def request_timeout(self, interval: float, sent: float) -> float:
        """A heartbeat's timeout: never past the deadline, so no late reply keeps instances alive."""
        deadline = self.deadline
        if self.fenced or deadline is None:
            return interval
        return max(0.2, min(self.beat_every(interval), deadline - sent))
