"""The warm-standby controller: keeps a standby node for every warm instance, renting one when
the pool has none (and a marketplace is configured). Its own step of the leader's loop, before
the executor, so a failover finds the standby already placed."""

from __future__ import annotations

from datetime import datetime, timedelta

from takeover.ports import LeaseToken
from takeover.store import Store

_RENT_RETRY = timedelta(seconds=60)  # after a standby rental failed, before the next


class StandbyController:
    def __init__(self, store: Store, rent_from: str | None = None) -> None:
        self._store = store
        self._rent_from = rent_from

    def run_cycle(self, now: datetime, fence: LeaseToken | None) -> list[str]:
        """One line per standby placed or machine asked for."""
        default = self._store.failovers.default_strategy
        steps = self._store.standbys.keep(default, now, fence)
        if self._rent_from is not None:  # a warm instance the pool has no standby node for
            wanted = self._store.rentals.want_standbys(default, self._rent_from, now, fence, _RENT_RETRY)
            steps.extend(f"instance {r.instance_id}: renting a standby machine" for r in wanted)
        return steps
