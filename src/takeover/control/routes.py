"""The routes a caller may see, and waiting until they change: a blocking query, as Consul's.

The change feed wakes waiters after any commit that changed a route, on every replica; a waiter
also reads again every ``recheck`` seconds, so a lost notification delays it, never strands it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from takeover.domain.models import Instance
from takeover.domain.routes import Route, route_of, routes_index

RECHECK = 1.0  # seconds: how stale a watch may be when a notification is lost


class RouteBoard:
    def __init__(
        self, read: Callable[[str | None], list[Instance]], address: str | None, recheck: float | None = None
    ) -> None:
        """``read(owner)``: the instances an owner sees (None: all); ``address``: the stable
        address template (TAKEOVER_ROUTE_ADDRESS)."""
        self._read = read
        self._address = address
        self._recheck = recheck or RECHECK
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: set[asyncio.Event] = set()

    def routes(self, owner: str | None) -> list[Route]:
        return [route_of(i, self._address) for i in self._read(owner)]

    def address_of(self, instance: Instance) -> str | None:
        return route_of(instance, self._address).address

    def notify(self) -> None:
        """From any thread, after a commit that changed a route."""
        loop = self._loop
        if not self._waiters or loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
            loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        for event in self._waiters:
            event.set()

    async def watch(self, owner: str | None, index: str | None, wait: float) -> tuple[str, list[Route]]:
        """The routes and their index, once the index differs from ``index`` or ``wait`` passed."""
        self._loop = asyncio.get_running_loop()
        deadline = self._loop.time() + wait
        event = asyncio.Event()
        self._waiters.add(event)  # before the read: a change committed during it wakes us
        try:
            while True:
                event.clear()
                routes = await asyncio.to_thread(self.routes, owner)
                current = routes_index(routes)
                left = deadline - self._loop.time()
                if index is None or current != index or left <= 0:
                    return current, routes
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), timeout=min(self._recheck, left))
        finally:
            self._waiters.discard(event)
