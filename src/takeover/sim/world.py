"""Virtual time: events run in time order, time jumps to the next one, nothing sleeps.

Everything random draws from the one ``rng``; ids too (``seeded_ids``), so a seed replays a run
exactly, and the trace of a run is the evidence a violation is reported with.
"""

from __future__ import annotations

import heapq
import random
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

START = datetime(2026, 1, 1, tzinfo=UTC)


class World:
    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.now = 0.0  # virtual seconds since START
        self.trace: list[str] = []
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0
        self.events = 0

    def at(self, when: float, action: Callable[[], None]) -> None:
        self._seq += 1  # ties run in the order they were scheduled
        heapq.heappush(self._queue, (max(when, self.now), self._seq, action))

    def after(self, delay: float, action: Callable[[], None]) -> None:
        self.at(self.now + delay, action)

    def wall(self, skew: float = 0.0) -> datetime:
        """A wall clock ``skew`` seconds off the true time."""
        return START + timedelta(seconds=self.now + skew)

    def log(self, text: str) -> None:
        self.trace.append(f"{self.now:10.3f}  {text}")

    def run(self, until: float, after_each: Callable[[], None]) -> None:
        while self._queue and self._queue[0][0] <= until:
            when, _, action = heapq.heappop(self._queue)
            self.now = when
            self.events += 1
            action()
            after_each()
        self.now = until


@contextmanager
def seeded_ids(rng: random.Random) -> Iterator[None]:
    """Every ``uuid4`` takeover's modules call draws from ``rng`` for the duration: placement
    breaks ties by id, so random ids would make two runs of one seed differ."""

    def uuid4() -> uuid.UUID:
        return uuid.UUID(int=rng.getrandbits(128), version=4)

    patched = [
        module
        for name, module in list(sys.modules.items())
        if name.startswith("takeover.") and getattr(module, "uuid4", None) is uuid.uuid4
    ]
    for module in patched:
        module.uuid4 = uuid4  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for module in patched:
            module.uuid4 = uuid.uuid4  # type: ignore[attr-defined]
