"""Node health score, as document 000 weighs it, and as takeover weighs a GPU node.

    score = 40 * (1 - cpu_load) + 30 * (1 - memory_load) + max(0, 30 - avg_latency_ms / 10)

with cpu_load and memory_load clamped to [0, 1]: CPU is worth 40 points, memory 30, latency
at most 30 (full at 0 ms, one point lost per 10 ms, none left from 300 ms). The result is in
[0, 100], rounded to two decimals so that the store and the rule compare equal values.

A node with GPUs runs GPU work, so its GPUs carry half the score and document 000's three
parts the other half, each at half its weight (CPU 20, memory 15, latency 15):

    GPU utilization 20 * (1 - mean utilization)
    GPU memory      15 * (1 - memory used / memory total, over all its GPUs)
    temperature     15, full up to 70 °C, none from 90 °C (NVIDIA's slowdown range), linear between,
                    by its hottest GPU

A node without GPUs scores exactly as document 000 says.
"""

from __future__ import annotations

from collections.abc import Sequence

from takeover.domain.models import Gpu

CPU_POINTS = 40.0
MEMORY_POINTS = 30.0
LATENCY_POINTS = 30.0
LATENCY_MS_PER_POINT = 10.0

GPU_SHARE = 0.5  # of the score, on a node with GPUs
GPU_UTILIZATION_POINTS = 20.0
GPU_MEMORY_POINTS = 15.0
GPU_TEMPERATURE_POINTS = 15.0
COOL_C = 70.0
HOT_C = 90.0


def _clamp01(value: float) -> float:
    return min(1.0, max(0.0, value))


def health_score(
    cpu_load: float, memory_load: float, avg_latency_ms: float, gpus: Sequence[Gpu] = ()
) -> float:
    cpu = CPU_POINTS * (1.0 - _clamp01(cpu_load))
    memory = MEMORY_POINTS * (1.0 - _clamp01(memory_load))
    latency = max(0.0, LATENCY_POINTS - max(0.0, avg_latency_ms) / LATENCY_MS_PER_POINT)
    if not gpus:
        return round(cpu + memory + latency, 2)
    return round((cpu + memory + latency) * (1 - GPU_SHARE) + gpu_points(gpus), 2)


def gpu_points(gpus: Sequence[Gpu]) -> float:
    """The GPUs' half of a GPU node's score, in [0, 50]."""
    utilization = sum(_clamp01(g.utilization) for g in gpus) / len(gpus)
    total = sum(max(0, g.memory_total_mb) for g in gpus)
    used = _clamp01(sum(max(0, g.memory_used_mb) for g in gpus) / total) if total else 1.0
    hottest = max(g.temperature_c for g in gpus)
    cool = _clamp01((HOT_C - hottest) / (HOT_C - COOL_C))
    return (
        GPU_UTILIZATION_POINTS * (1 - utilization)
        + GPU_MEMORY_POINTS * (1 - used)
        + GPU_TEMPERATURE_POINTS * cool
    )


def next_low_score_streak(score: float, threshold: float, streak: int) -> int:
    """Consecutive heartbeats under ``threshold``; one good heartbeat resets it."""
    return streak + 1 if score < threshold else 0
