"""Cuts queries stuck on a server that stopped answering (SIGSTOP, a frozen VM, a dead NIC).

A hung server's kernel still acknowledges TCP, so neither keepalives nor tcp_user_timeout
notice, and libpq waits forever on a kept connection. Each query registers its socket here for
the price of a dict entry; when one has run longer than ``stall_after``, the watchdog asks its
region's group to check the server with a fresh connection under the connect deadline. A slow
query on a live server passes that check and keeps running; a server that does not answer is
marked down, and the stuck sockets are shut down so their queries fail over at once.
"""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Confirm = Callable[[str], bool]  # region -> still answering?


class Watchdog:
    def __init__(self, stall_after: float, confirm: Confirm, name: str = "takeover-regions-watchdog") -> None:
        self.stall_after = stall_after
        self._confirm = confirm
        self._running: dict[int, tuple[float, str, int]] = {}  # token: started, region, fd
        self._ids = itertools.count()
        self._lock = threading.Lock()  # a query's end and its socket's shutdown never interleave
        self._stop = threading.Event()
        self._checked: set[int] = set()  # stalls found alive: not checked again
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def begin(self, region: str, fd: int | None) -> int | None:
        """Watch a query on socket ``fd`` (None: a driver without one, not watched)."""
        if fd is None:
            return None
        token = next(self._ids)
        self._running[token] = (time.monotonic(), region, fd)  # a tuple: this runs per query
        return token

    def end(self, token: int | None) -> None:
        if token is not None:
            with self._lock:
                del self._running[token]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        tick = min(0.05, self.stall_after / 4)
        while not self._stop.wait(tick):
            self.sweep()

    def sweep(self) -> None:
        """Check each region with a stalled query once; cut its queries if it does not answer."""
        now = time.monotonic()
        running_now = self._running.copy()  # one C call: safe while queries come and go
        stalled: dict[str, list[int]] = {}
        for token, (started, region, _) in running_now.items():
            if now - started >= self.stall_after and token not in self._checked:
                stalled.setdefault(region, []).append(token)
        self._checked.intersection_update(running_now)
        for region, tokens in stalled.items():
            if self._confirm(region):
                self._checked.update(tokens)
                continue
            with self._lock:
                for token in tokens:
                    if token in self._running:
                        shut_down(self._running[token][2])


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
