"""What the control plane cannot vouch for right now, in words: `GET /api/v1/status`, `takeover
status` and a banner on every console page. While the store refuses writes, no replica leads or
nodes are silent without being proven stopped, the pool's rows alone would show a stale "all
online"; these say why it may be stale."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from takeover.control.leadership import LEASE_NAME
from takeover.domain.errors import StoreUnavailable
from takeover.ports import Clock, LeaseToken
from takeover.store import Store


@dataclass(frozen=True, slots=True)
class PlaneStatus:
    checked_at: datetime
    store: str | None = None  # why this replica cannot write its store; None: it can
    leader: LeaseToken | None = None
    silent: int = 0  # online nodes not heard from for longer than ``silent_after``
    silent_names: list[str] = field(default_factory=list)
    silent_after: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def leading(self) -> str | None:
        """The replica whose lease has not expired, if one."""
        lease = self.leader
        return lease.holder if lease is not None and lease.expires_at > self.checked_at else None


def plane_status(store: Store, clock: Clock, silent_after: float) -> PlaneStatus:
    """``silent_after``: the agents' fence_after; a node silent longer runs on only because its
    witnesses vouch for it, or it is down and not yet proven stopped."""
    now = clock.now()
    problem = store.not_ready()
    try:
        leader = store.coordinator.current(LEASE_NAME)
        silent, names = store.nodes.silent(now - timedelta(seconds=silent_after))
    except StoreUnavailable as error:
        return PlaneStatus(now, problem or error.message, problems=[_store_problem(problem or error.message)])
    status = PlaneStatus(now, problem, leader, silent, names, silent_after)
    if problem is not None:
        status.problems.append(_store_problem(problem))
    if status.leading is None:
        since = "" if leader is None else f" since {leader.expires_at:%Y-%m-%d %H:%M:%S} UTC"
        status.problems.append(f"no replica leads{since}: no node is declared offline and nothing fails over")
    if silent:
        listed = ", ".join(names) + (", ..." if silent > len(names) else "")
        status.problems.append(
            f"{silent} node(s) shown online have not been heard from for over {silent_after:g} s ({listed}):"
            " their witnesses vouch for them, or they are down and not yet proven stopped"
        )
    return status


def _store_problem(reason: str) -> str:
    return f"{reason}: no heartbeat is stored, the pool shown is as it was last written"
