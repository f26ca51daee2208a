"""Which open agent streams this process holds, and waking them when their node's desired state changed.

A notification says only *which* node changed; the stream reads the state itself, after the
commit that changed it, so a late or duplicated notification is harmless and a lost one is
covered by the next heartbeat's reply. Push is an optimisation, never the only path.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from uuid import UUID


class PushHub:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._streams: dict[UUID, set[asyncio.Event]] = {}

    def subscribe(self, node_id: UUID) -> asyncio.Event:
        """An event set whenever ``node_id`` changes; call from the event loop."""
        self._loop = asyncio.get_running_loop()
        event = asyncio.Event()
        self._streams.setdefault(node_id, set()).add(event)
        return event

    def unsubscribe(self, node_id: UUID, event: asyncio.Event) -> None:
        events = self._streams.get(node_id)
        if events is not None:
            events.discard(event)
            if not events:
                del self._streams[node_id]

    def notify(self, node_ids: Iterable[UUID]) -> None:
        """From any thread: wake the streams of these nodes (after the change committed)."""
        wanted = [n for n in set(node_ids) if n in self._streams]
        loop = self._loop
        if not wanted or loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody is left to wake
            loop.call_soon_threadsafe(self._wake, wanted)

    def _wake(self, node_ids: list[UUID]) -> None:
        for node_id in node_ids:
            for event in self._streams.get(node_id, ()):
                event.set()
