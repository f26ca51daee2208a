"""The loop: each change of the routes (or each ``wait`` without one) is applied to the proxy."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Protocol

import structlog

from takeover.domain.routes import Route
from takeover.follow.watch import RouteWatch

log = structlog.get_logger("takeover.follow")


class Proxy(Protocol):
    def sync(self, routes: Iterable[Route]) -> None:
        """Bring the proxy in line with ``routes``; idempotent, so a resync costs nothing."""


def follow(watch: RouteWatch, proxy: Proxy, stop: threading.Event) -> None:
    """Until ``stop``: the proxy also gets the last known routes again after every quiet ``wait``,
    which puts back what a restarted proxy forgot, even while the control plane is away."""
    while not stop.is_set():
        routes = watch.next()
        if routes is None or stop.is_set():
            continue
        try:
            proxy.sync(routes)
        except OSError as error:
            log.error("could not update the proxy; trying again", error=str(error))
            watch.index = None  # the next round answers at once instead of after a quiet ``wait``
            stop.wait(1.0)
