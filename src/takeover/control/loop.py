"""The controller loop: cadence, wake-up on new work, graceful shutdown."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from takeover.control.executor import ExecutorOutcome, FailoverExecutor
from takeover.control.leadership import Leadership
from takeover.control.monitor import MonitorOutcome, NodeMonitor
from takeover.control.renter import Renter
from takeover.control.standbys import StandbyController
from takeover.domain.errors import Contended, FencedOut, StoreUnavailable
from takeover.metrics import Metrics
from takeover.ports import Clock, LeaseToken

log = structlog.get_logger("takeover.loop")


@dataclass
class CycleOutcome:
    leader: bool
    epoch: int | None = None
    monitor: MonitorOutcome | None = None
    standbys: list[str] = field(default_factory=list)  # standbys placed or rented
    executor: ExecutorOutcome | None = None  # the failover steps taken
    error: str | None = None


class ControlLoop:
    def __init__(
        self,
        leadership: Leadership,
        monitor: NodeMonitor,
        standbys: StandbyController,
        executor: FailoverExecutor,
        clock: Clock,
        interval: float,
        metrics: Metrics,
        renter: Renter | None = None,
    ) -> None:
        self.leadership = leadership
        self._monitor = monitor
        self._standbys = standbys
        self._executor = executor
        self._clock = clock
        self._interval = interval
        self._metrics = metrics
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._one_cycle_at_a_time = threading.Lock()  # the loop and check-offline share state
        self._renter = renter
        self._rent_wake: asyncio.Event | None = None

    def run_cycle(self) -> CycleOutcome:
        with self._one_cycle_at_a_time:
            started = time.perf_counter()
            try:
                return self._cycle()
            finally:
                self._metrics.cycle_seconds.observe(time.perf_counter() - started)

    def _cycle(self) -> CycleOutcome:
        token = self.leadership.ensure(self._clock.now())
        self._metrics.leader.set(1 if token else 0)
        self._metrics.leader_epoch.set(token.epoch if token else 0)
        if token is None:
            return CycleOutcome(leader=False)
        return self.work(token, self._clock.now)

    def work(self, token: LeaseToken, now: Callable[[], datetime]) -> CycleOutcome:
        """The controllers' work as the holder of ``token``; the simulation also calls it with a
        stale token and time, as a leader paused mid-cycle goes on once it runs again."""
        outcome = CycleOutcome(leader=True, epoch=token.epoch)
        try:
            outcome.monitor = self._monitor.run_cycle(now(), token)
            outcome.standbys = self._standbys.run_cycle(now(), token)
            outcome.executor = self._executor.run_cycle(now(), token)
        except FencedOut as error:
            self.leadership.token = None
            outcome.error = str(error)
            log.warning("fenced out; standing down", error=str(error))
        except Contended as error:  # nothing written; the other transaction is through: again now
            outcome.error = str(error)
            log.info("a step lost a deadlock; running the cycle again", error=str(error))
            self.wake()
        except StoreUnavailable as error:
            outcome.error = str(error)
            log.warning("store unavailable during cycle", error=str(error))
        return outcome

    def wake(self) -> None:
        """Run the next cycle now (thread-safe); used when new work was recorded."""
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)
            if self._rent_wake is not None:
                self._loop.call_soon_threadsafe(self._rent_wake.set)

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        renting = asyncio.create_task(self._rent(stop)) if self._renter is not None else None
        while not stop.is_set():
            self._wake.clear()  # before the cycle: a wake-up during it means run again
            try:
                await asyncio.to_thread(self.run_cycle)
            except Exception:  # a bug in one cycle must not kill the controllers
                log.exception("controller cycle crashed")
            await self._pause(stop, self._wake)
        if renting is not None:
            await renting
        await asyncio.to_thread(self.leadership.release)

    async def _rent(self, stop: asyncio.Event) -> None:
        """The renter's own loop: a marketplace call never holds up detection or failovers."""
        assert self._renter is not None
        self._rent_wake = wake = asyncio.Event()
        while not stop.is_set():
            wake.clear()
            token = self.leadership.token
            if token is not None:
                try:
                    steps = await asyncio.to_thread(self._renter.run_cycle, token)
                    for step in steps:
                        log.info("renter", step=step)
                    if steps and self._wake is not None:
                        self._wake.set()  # a machine came or went: the executor may place now
                except FencedOut:
                    log.warning("renter fenced out; standing down")
                except StoreUnavailable as error:
                    log.warning("store unavailable during the renter's cycle", error=str(error))
                except Exception:  # a bug in one cycle must not stop the renting
                    log.exception("renter cycle crashed")
            await self._pause(stop, wake)

    async def _pause(self, stop: asyncio.Event, wake: asyncio.Event) -> None:
        """Until the next cycle is due, or ``wake`` or ``stop`` is set."""
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
        await asyncio.wait(waits, timeout=self._interval, return_when=asyncio.FIRST_COMPLETED)
        for task in waits:
            task.cancel()
