"""Node health score, as document 000 weighs it.

    score = 40 * (1 - cpu_load) + 30 * (1 - memory_load) + max(0, 30 - avg_latency_ms / 10)

with cpu_load and memory_load clamped to [0, 1]: CPU is worth 40 points, memory 30, latency
at most 30 (full at 0 ms, one point lost per 10 ms, none left from 300 ms). The result is in
[0, 100], rounded to two decimals so that the store and the rule compare equal values.
"""

from __future__ import annotations

CPU_POINTS = 40.0
MEMORY_POINTS = 30.0
LATENCY_POINTS = 30.0
LATENCY_MS_PER_POINT = 10.0


def _clamp01(value: float) -> float:
    return min(1.0, max(0.0, value))


def health_score(cpu_load: float, memory_load: float, avg_latency_ms: float) -> float:
    cpu = CPU_POINTS * (1.0 - _clamp01(cpu_load))
    memory = MEMORY_POINTS * (1.0 - _clamp01(memory_load))
    latency = max(0.0, LATENCY_POINTS - max(0.0, avg_latency_ms) / LATENCY_MS_PER_POINT)
    return round(cpu + memory + latency, 2)


def next_low_score_streak(score: float, threshold: float, streak: int) -> int:
    """Consecutive heartbeats under ``threshold``; one good heartbeat resets it."""
    return streak + 1 if score < threshold else 0
