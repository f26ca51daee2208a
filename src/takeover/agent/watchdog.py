"""An optional Linux watchdog (``NODE_WATCHDOG=/dev/watchdog``): the last backstop, Patroni's way.

The keepers stop each workload at the fence deadline whatever the agent does; they cannot when
the whole machine stalls or a workload sits in an uninterruptible read. A hardware (or softdog)
watchdog resets the machine when nobody writes to it for its timeout. The agent writes to it at
every turn of its loop while its fence is live, so a hung or starved agent resets the machine
``NODE_WATCHDOG_TIMEOUT`` after its loop last came round; keep that under the control plane's
``fence_margin`` so the reset lands before ``offline_after``. When the fence falls cleanly (the
agent stopped its workloads itself) it disarms the watchdog (the magic close, ``V``): a node cut
off from the control plane is not reset for that. A device that refuses the timeout ioctl (an
emulated one, a file in tests) is still written to; the driver's own timeout then applies.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
from pathlib import Path

import structlog

log = structlog.get_logger("takeover.agent")
WDIOC_SETTIMEOUT = 0xC0045706  # _IOWR('W', 6, int)


class Watchdog:
    def __init__(self, device: Path, timeout: int) -> None:
        self.device = device
        self.timeout = timeout
        self._fd: int | None = None

    @property
    def armed(self) -> bool:
        return self._fd is not None

    def tick(self, live: bool) -> None:
        """Once per turn of the agent's loop: keep the machine alive while the fence is live,
        disarm once it has fallen."""
        if live:
            self._pet()
        else:
            self.disarm()

    def _pet(self) -> None:
        if self._fd is None:
            self._fd = os.open(self.device, os.O_WRONLY)
            try:
                fcntl.ioctl(self._fd, WDIOC_SETTIMEOUT, struct.pack("i", self.timeout))
            except OSError as exc:
                log.warning("the watchdog kept its own timeout", device=str(self.device), error=str(exc))
            log.info("watchdog armed", device=str(self.device), timeout_s=self.timeout)
        os.write(self._fd, b"\0")

    def disarm(self) -> None:
        """The magic close: the driver stops counting (unless built with nowayout)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.write(self._fd, b"V")
        os.close(self._fd)
        self._fd = None
        log.info("watchdog disarmed", device=str(self.device))
