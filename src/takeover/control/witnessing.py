"""The leader's side of domain.witnesses: offer each node its witnesses, and prove a silent
node's fence before it may be failed over."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from uuid import UUID

from takeover.domain.liveness import Liveness
from takeover.domain.models import Node, NodeStatus
from takeover.domain.witnesses import WITNESSES, choose, fence_proven
from takeover.ports import LeaseToken
from takeover.store import Store


class WitnessWatch:
    def __init__(self, store: Store, liveness: Liveness, lag: float, wait: float) -> None:
        """``lag`` and the vouch's lease are the agents' (AgentTimings); ``wait`` adds the margin
        a node's fence has to stop its instances (fence_margin)."""
        self._store = store
        self._liveness = liveness
        self._lag = timedelta(seconds=lag)
        self._wait = wait

    def observe(self, nodes: Sequence[Node], at: float) -> None:
        for node in nodes:
            self._liveness.held(node.id, node.witness.stamp_held, node.witness.held_for, at)

    def proven(self, node: Node, at: float) -> bool:
        """Whether ``node``'s witnesses prove it has stopped everything (domain.witnesses)."""
        held = [s for s in (node.last_heartbeat_at, node.witness.stamp_held) if s is not None]
        silent_stamp: datetime | None = max(held) if held else None
        sets = [node.witness.used or (), node.witness.offered or ()]
        newer: dict[UUID, float] = {}
        if silent_stamp is not None:
            for witness in {w for s in sets for w in s}:
                since = self._liveness.newer_since(witness, silent_stamp + self._lag)
                if since is not None:
                    newer[witness] = since
        return fence_proven(sets, silent_stamp, newer, self._wait, at)

    def offer(self, nodes: Sequence[Node], now: datetime, fence: LeaseToken | None) -> None:
        """A node whose offered set lost a member (deleted, offline, or no longer answering
        probes), or could be larger, is offered a new one, once it reported using the last."""
        candidates = [
            (n.id, n.region)
            for n in nodes
            if n.status is not NodeStatus.OFFLINE and n.witness.addr is not None
        ]
        valid = {c for c, _ in candidates}
        size = min(WITNESSES, len(valid) - 1)
        wanting = []
        for node in nodes:
            offered = node.witness.offered
            if node.id not in valid:
                continue  # offline, or an agent that answers no probes (and so asks none)
            if offered is not None and set(offered) <= valid and len(offered) >= size:
                continue
            if offered is not None and offered != node.witness.used:
                continue  # the last offer may not have arrived: only one change in flight
            wanting.append(node)
        if not wanting:
            return
        chosen = choose(candidates, WITNESSES)
        offers = {n.id: chosen[n.id] for n in wanting if chosen[n.id] != n.witness.offered}
        if offers:
            self._store.nodes.offer_witnesses(offers, now, fence)
