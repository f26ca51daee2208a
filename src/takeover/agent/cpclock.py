"""The control plane's clock, as an agent can tell it: what the last reply said the time was,
plus how long ago that was on this machine's monotonic clock.

Snapshots are stamped with it, so a step of the node's own wall clock (NTP correcting it, a VM
restored, an operator's ``date -s``) changes neither their order nor their age as the control
plane computes it: a clock stepped back 30 s would otherwise make each new snapshot sort as the
oldest, pruned right after it is written, and read as taken in the future.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class ControlPlaneClock:
    def __init__(
        self,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._monotonic, self._wall = monotonic, wall
        self._base: tuple[datetime, float] | None = None  # (its time, our monotonic time then)

    def observe(self, server_time: datetime | None, sent: float, received: float) -> None:
        """A reply to a request sent and received at these monotonic times: the server's
        reading is taken as of the middle of the round trip."""
        if server_time is not None:
            self._base = (server_time, (sent + received) / 2)

    def now(self) -> datetime:
        """This machine's wall clock until a reply has told the control plane's."""
        if self._base is None:
            return self._wall()
        server, at = self._base
        return server + timedelta(seconds=self._monotonic() - at)
