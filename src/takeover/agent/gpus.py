"""The node's GPUs, read through NVML (nvidia-ml-py), for its heartbeats.

A node without NVIDIA's driver has no NVML library: it reports no GPUs, and that is not an
error. The NVML module is a parameter so that tests can hand in takeover.testing.FakeNvml (the
values NVML would return) where no GPU is reachable.
"""

from __future__ import annotations

from typing import Any

import structlog

log = structlog.get_logger("takeover.agent")
_MIB = 1024 * 1024


class GpuReader:
    def __init__(self, nvml: Any = None) -> None:
        if nvml is None:
            import pynvml

            nvml = pynvml
        self.nvml = nvml
        self.available = self._init()

    def _init(self) -> bool:
        try:
            self.nvml.nvmlInit()
        except self.nvml.NVMLError as exc:
            log.info("no NVIDIA GPUs readable on this node", reason=str(exc))
            return False
        return True

    def read(self) -> list[dict[str, Any]]:
        """Each GPU as the heartbeat reports it; a GPU NVML fails to read is left out, logged."""
        if not self.available:
            return []
        nvml, gpus = self.nvml, []
        try:
            count = nvml.nvmlDeviceGetCount()
        except nvml.NVMLError as exc:
            log.warning("NVML cannot count the GPUs", error=str(exc))
            return []
        for index in range(count):
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                name = nvml.nvmlDeviceGetName(handle)
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                rates = nvml.nvmlDeviceGetUtilizationRates(handle)
                temperature = nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)
            except nvml.NVMLError as exc:
                log.warning("NVML cannot read a GPU", index=index, error=str(exc))
                continue
            gpus.append(
                {
                    "index": index,
                    "name": name.decode() if isinstance(name, bytes) else str(name),
                    "memory_total_mb": int(memory.total // _MIB),
                    "memory_used_mb": int(memory.used // _MIB),
                    "utilization": round(min(100, max(0, rates.gpu)) / 100, 4),
                    "temperature_c": float(temperature),
                }
            )
        return gpus
