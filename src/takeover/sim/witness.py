"""A simulated agent's witness part, deciding as agent.witness does (domain.witnesses).

Probes and answers travel over the simulated network between nodes; a paused agent answers
nothing (its socket buffers the answers to its own probes, read when it runs again), a starved
one answers late; a restarted one holds no stamp until its first acknowledgement.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from uuid import UUID

from takeover.domain.models import Witnessing
from takeover.domain.witnesses import PROBES, Answer, vouched_until
from takeover.sim.network import Network
from takeover.sim.world import World

if TYPE_CHECKING:
    from takeover.agent.fence import Fence


@dataclass
class SimWitness:
    world: World
    net: Network
    name: str
    region: str
    peers: dict[UUID, SimWitness]  # every node's, by node id: whom a probe reaches
    answering: Callable[[], bool]  # the agent runs (up, not paused)
    late: Callable[[], float]  # how late a starved agent answers, at most
    stamp: datetime | None = None
    stamp_at: float = 0.0
    used: tuple[UUID, ...] = ()
    answers: dict[UUID, Answer] = field(default_factory=dict)  # each witness's latest
    next_probe: float = 0.0
    lag: float | None = None
    lease: float | None = None
    life: int = 0  # answers to an earlier life's probes find a new socket: dropped

    def forget(self) -> None:
        """A restarted agent: no stamp, no witnesses, no answers."""
        self.stamp, self.used, self.answers, self.next_probe = None, (), {}, 0.0
        self.life += 1

    def report(self) -> Witnessing:
        held_for = None if self.stamp is None else self.world.now - self.stamp_at
        return Witnessing(f"{self.name}:7947", self.stamp, held_for, self.used)

    def heard(self, stamp: datetime | None, offered: tuple[UUID, ...], lag: float, lease: float) -> None:
        if stamp is not None and (self.stamp is None or stamp > self.stamp):
            self.stamp, self.stamp_at = stamp, self.world.now
        self.used, self.lag, self.lease = offered, lag, lease

    def tick(self, fence: Fence, interval: float) -> float:
        """Probe when due (from an interval before the acknowledgement runs out, as the agent
        does), let a quorum's vouch hold the fence; when to come round to probe again."""
        acked = fence.acked_until
        if not fence.wants_vouch(interval):
            soon = self.world.now + interval / PROBES
            self.next_probe = acked - interval if acked is not None and not fence.fenced else soon
        elif self.world.now >= self.next_probe:
            self.next_probe = self.world.now + interval / PROBES
            for witness in self.used:
                self._probe(witness)
        if self.lag is not None and self.lease is not None:
            lag = timedelta(seconds=self.lag)
            fence.vouch(vouched_until(self.answers.values(), set(self.used), self.stamp, lag, self.lease))
        return self.next_probe

    def _probe(self, witness_id: UUID) -> None:
        peer, sent, life = self.peers.get(witness_id), self.world.now, self.life
        if peer is None:
            return

        def asked() -> None:
            if not peer.answering():
                return
            delay = self.world.rng.uniform(0, peer.late()) if peer.late() else 0.0
            self.world.after(delay, lambda: peer._answer(self, witness_id, sent, life))

        self.net.between(self.name, self.region, peer.name, peer.region, asked)

    def _answer(self, asker: SimWitness, me: UUID, sent: float, life: int) -> None:
        if not self.answering():
            return
        stamp = self.stamp

        def back() -> None:
            seen = asker.answers.get(me)
            if asker.life == life and (seen is None or sent >= seen.sent):
                asker.answers[me] = Answer(me, sent, stamp)

        self.net.between(self.name, self.region, asker.name, asker.region, back)
