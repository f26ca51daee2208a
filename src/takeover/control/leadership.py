"""Lease first: every cycle renews the leader lease before anything else is done."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

import structlog

from takeover.domain.errors import StoreUnavailable
from takeover.ports import Coordinator, LeaseToken

log = structlog.get_logger("takeover.leadership")
LEASE_NAME = "controllers"


class Leadership:
    def __init__(self, coordinator: Coordinator, holder: str, ttl: timedelta) -> None:
        self._coordinator = coordinator
        self.holder = holder
        self._ttl = ttl
        self.token: LeaseToken | None = None

    def ensure(self, now: datetime) -> LeaseToken | None:
        """The lease token when this process leads now; None means: do not act as leader."""
        try:
            token = self._coordinator.acquire(LEASE_NAME, self.holder, self._ttl, now)
        except StoreUnavailable as error:
            log.warning("lease renewal failed; standing down", error=str(error))
            token = None
        if (token is None) != (self.token is None) or (
            token and self.token and token.epoch != self.token.epoch
        ):
            log.info("leadership changed", leader=token is not None, epoch=token.epoch if token else None)
        self.token = token
        return token

    def current_leader(self) -> LeaseToken | None:
        return self._coordinator.current(LEASE_NAME)

    def release(self) -> None:
        if self.token is not None:
            with contextlib.suppress(StoreUnavailable):  # it expires on its own
                self._coordinator.release(self.token)
            self.token = None
