"""Fakes for fast unit tests: a settable clock, an in-memory leader lease, NVML without a GPU.

The in-memory store is the SQL store on an in-memory SQLite database (``memory_store``): the
same code as production, so no second implementation can drift from it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from takeover.ports import LeaseToken
from takeover.store import Store, make_engine, migrate


class FakeClock:
    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def elapsed(self) -> float:
        return self._now.timestamp()  # a fake clock only moves forward

    def advance(self, seconds: float) -> datetime:
        self._now += timedelta(seconds=seconds)
        return self._now


class MemoryCoordinator:
    """Coordinator port in memory (see ports.Coordinator)."""

    def __init__(self) -> None:
        self._leases: dict[str, LeaseToken] = {}
        self._lock = threading.Lock()

    def acquire(self, name: str, holder: str, ttl: timedelta, now: datetime) -> LeaseToken | None:
        with self._lock:
            held = self._leases.get(name)
            if held is None:
                epoch = 1
            elif held.holder == holder and held.expires_at > now:
                epoch = held.epoch
            elif held.expires_at <= now:
                epoch = held.epoch + 1
            else:
                return None
            token = LeaseToken(name, holder, epoch, now + ttl)
            self._leases[name] = token
            return token

    def release(self, token: LeaseToken) -> bool:
        with self._lock:
            held = self._leases.get(token.name)
            if held is None or (held.holder, held.epoch) != (token.holder, token.epoch):
                return False
            self._leases[token.name] = LeaseToken(
                token.name, token.holder, token.epoch, datetime.min.replace(tzinfo=UTC)
            )
            return True

    def current(self, name: str) -> LeaseToken | None:
        with self._lock:
            return self._leases.get(name)


def memory_store(low_score_threshold: float = 30.0, degraded_streak: int = 5) -> Store:
    engine = make_engine("sqlite://")
    migrate(engine)
    return Store(engine, low_score_threshold=low_score_threshold, degraded_streak=degraded_streak)


class FakeNvml:
    """A fake of the pynvml module (no GPU is reachable here): the calls GpuReader makes, with
    values shaped as NVML returns them (memory in bytes, utilization in percent, names as str)."""

    NVML_TEMPERATURE_GPU = 0

    class NVMLError(Exception):
        pass

    @dataclass
    class Device:
        name: str
        total_mib: int
        used_mib: int = 0
        gpu_percent: int = 0
        temperature: int = 40
        broken: bool = False

    def __init__(self, devices: list[FakeNvml.Device], init_error: str | None = None) -> None:
        self.devices = devices
        self.init_error = init_error

    def nvmlInit(self) -> None:  # noqa: N802  (NVML's names)
        if self.init_error is not None:
            raise self.NVMLError(self.init_error)

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeNvml.Device:  # noqa: N802
        return self.devices[index]

    def _check(self, device: FakeNvml.Device) -> FakeNvml.Device:
        if device.broken:
            raise self.NVMLError("GPU is lost")
        return device

    def nvmlDeviceGetName(self, device: FakeNvml.Device) -> str:  # noqa: N802
        return self._check(device).name

    def nvmlDeviceGetMemoryInfo(self, device: FakeNvml.Device) -> SimpleNamespace:  # noqa: N802
        d = self._check(device)
        return SimpleNamespace(
            total=d.total_mib * 2**20, used=d.used_mib * 2**20, free=(d.total_mib - d.used_mib) * 2**20
        )

    def nvmlDeviceGetUtilizationRates(self, device: FakeNvml.Device) -> SimpleNamespace:  # noqa: N802
        return SimpleNamespace(gpu=self._check(device).gpu_percent, memory=0)

    def nvmlDeviceGetTemperature(self, device: FakeNvml.Device, sensor: int) -> int:  # noqa: N802, ARG002
        return self._check(device).temperature
