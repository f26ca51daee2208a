from hypothesis import given
from hypothesis import strategies as st

from takeover.domain.health import health_score, next_low_score_streak

loads = st.floats(min_value=-1, max_value=2, allow_nan=False)
latencies = st.floats(min_value=0, max_value=10_000, allow_nan=False)


def test_idle_node_with_no_latency_scores_100() -> None:
    assert health_score(0.0, 0.0, 0.0) == 100.0


def test_weights_are_40_cpu_30_memory_30_latency() -> None:
    assert health_score(1.0, 0.0, 0.0) == 60.0
    assert health_score(0.0, 1.0, 0.0) == 70.0
    assert health_score(0.0, 0.0, 300.0) == 70.0
    assert health_score(0.5, 0.5, 100.0) == 20.0 + 15.0 + 20.0


def test_latency_costs_one_point_per_10_ms_and_never_goes_negative() -> None:
    assert health_score(0, 0, 10) == 99.0
    assert health_score(0, 0, 5000) == 70.0


@given(loads, loads, latencies)
def test_score_stays_within_0_and_100(cpu: float, memory: float, latency: float) -> None:
    assert 0.0 <= health_score(cpu, memory, latency) <= 100.0


@given(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1), latencies)
def test_more_cpu_load_never_raises_the_score(a: float, b: float, memory: float, latency: float) -> None:
    low, high = sorted((a, b))
    assert health_score(high, memory, latency) <= health_score(low, memory, latency)


def test_low_score_streak_counts_consecutive_low_heartbeats_and_resets() -> None:
    streak = 0
    for score in (10, 20, 25):
        streak = next_low_score_streak(score, 30, streak)
    assert streak == 3
    assert next_low_score_streak(31, 30, streak) == 0
