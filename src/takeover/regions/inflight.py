"""Statements in flight, per region: counted when they finish, cut when stuck on a hung server.

A hung server (SIGSTOP, a frozen VM) still has a kernel that acknowledges TCP, so neither
keepalives nor tcp_user_timeout notice, and libpq waits forever on a kept connection. Each
statement registers its socket here for the price of a dict entry; when one has run longer
than ``stall_after``, the watchdog thread asks its group to check the server with a fresh
connection under the connect deadline. A slow statement on a live server passes that check
and keeps running; a server that does not answer is marked down, and the stuck sockets are
shut down so their statements fail over at once. Finishing a statement and counting its
outcome share one lock: this runs for every query.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import structlog

log = structlog.get_logger("takeover.regions")
Confirm = Callable[[str], bool]  # region -> still answering?
SUCCEEDED, FAILED, REFUSED = 0, 1, 2  # refused: the caller's error (SQL), not the region's


class InFlight:
    def __init__(
        self,
        regions: list[str],
        stall_after: float,
        confirm: Confirm,
        name: str = "takeover-regions-watchdog",
    ) -> None:
        self.counts = {region: [0, 0, 0] for region in regions}  # by outcome
        self.stall_after = stall_after
        self._confirm = confirm
        # by socket: a connection runs one statement at a time, so its fd names the statement
        self._running: dict[int, tuple[float, str]] = {}  # fd: started, region
        self._lock = threading.Lock()  # a statement's end and its socket's shutdown never interleave
        self._stop = threading.Event()
        self._checked: set[tuple[int, float]] = set()  # stalls found alive: not checked again
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def begin(self, region: str, fd: int | None) -> int | None:
        """Watch a statement on socket ``fd`` (None: a driver without one, not watched)."""
        if fd is not None:
            self._running[fd] = (time.monotonic(), region)
        return fd

    def end(self, fd: int | None, region: str, outcome: int) -> None:
        with self._lock:
            if fd is not None:
                del self._running[fd]
            self.counts[region][outcome] += 1

    def count(self, region: str, outcome: int) -> None:
        """An attempt that never ran a statement (its connection could not be opened)."""
        with self._lock:
            self.counts[region][outcome] += 1

    def read(self) -> dict[str, list[int]]:
        with self._lock:
            return {region: list(counts) for region, counts in self.counts.items()}

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        tick = min(0.05, self.stall_after / 4)
        while not self._stop.wait(tick):
            try:
                self.sweep()
            except Exception:  # a check that broke must not end the watching
                log.exception("stall check failed")

    def sweep(self) -> None:
        """Check each region with a stalled query once; cut its queries if it does not answer."""
        now = time.monotonic()
        running_now = self._running.copy()  # one C call: safe while statements come and go
        stalled: dict[str, list[tuple[int, float]]] = {}
        for fd, (started, region) in running_now.items():
            if now - started >= self.stall_after and (fd, started) not in self._checked:
                stalled.setdefault(region, []).append((fd, started))
        self._checked.intersection_update((fd, started) for fd, (started, _) in running_now.items())
        for region, statements in stalled.items():
            if self._confirm(region):
                self._checked.update(statements)
                continue
            with self._lock:
                for fd, started in statements:
                    if self._running.get(fd, (None,))[0] == started:  # the same statement, still stuck
                        shut_down(fd)


def shut_down(fd: int) -> None:
    """Shut the connection down under its owner, who then sees it closed; the fd stays theirs."""
    try:
        dup = socket.socket(fileno=os.dup(fd))
    except OSError:
        return
    try:
        dup.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        dup.close()


@contextmanager
def deadline(fd: int | None, seconds: float) -> Iterator[threading.Event]:
    """For a one-off call (a health check): shut the socket down if the block runs past the
    deadline; the event says whether it did. Without a socket (some drivers) there is none."""
    fired = threading.Event()
    if fd is None:
        yield fired
        return

    def cut() -> None:
        fired.set()
        shut_down(fd)

    timer = threading.Timer(seconds, cut)
    timer.daemon = True
    timer.start()
    try:
        yield fired
    finally:
        timer.cancel()
        timer.join()  # never cut after the caller closes the socket and the fd is reused
