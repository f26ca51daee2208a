"""Group commit for heartbeats: concurrent heartbeats share one transaction.

While one batch commits, the next one gathers; each caller is answered once the batch that
holds its heartbeat has committed, so an acknowledged heartbeat is never lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime

from takeover.domain.errors import TakeoverError
from takeover.domain.heartbeat import Heartbeat
from takeover.ports import Clock
from takeover.store import HeartbeatResult

Item = tuple[str, Heartbeat]  # (token hash, heartbeat): authenticated inside the batch
Outcome = HeartbeatResult | TakeoverError
Apply = Callable[[Sequence[Item], datetime], list[Outcome]]


class HeartbeatBatcher:
    def __init__(
        self,
        apply: Apply,
        clock: Clock,
        max_batch: int,
        on_batch: Callable[[list[Outcome]], None] = lambda _: None,
    ) -> None:
        self._apply = apply
        self._clock = clock
        self._max_batch = max_batch
        self._on_batch = on_batch
        self._pending: list[tuple[Item, asyncio.Future[Outcome]]] = []
        self._draining = False
        self._drainer: asyncio.Task[None] | None = None

    async def submit(self, token_hash: str, heartbeat: Heartbeat) -> HeartbeatResult:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        self._pending.append(((token_hash, heartbeat), future))
        if not self._draining:
            self._draining = True
            self._drainer = loop.create_task(self._drain())
        result = await future
        if isinstance(result, TakeoverError):
            raise result
        return result

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                await self._commit(batch)
        finally:
            self._draining = False

    async def _commit(self, batch: list[tuple[Item, asyncio.Future[Outcome]]]) -> None:
        try:
            results = await asyncio.to_thread(self._apply, [item for item, _ in batch], self._clock.now())
        except Exception as error:  # noqa: BLE001 - every waiter gets it; none is left hanging
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        self._on_batch(results)
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
