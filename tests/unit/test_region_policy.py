"""Document 004's policy with an injected clock: windows, failover chains, probes, failback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from takeover.domain.regions import EventKind, GroupBook, GroupPolicy, ReadBalance, RegionSpec

T0 = datetime(2026, 11, 22, tzinfo=UTC)
S = timedelta(seconds=1)
REGIONS = [
    RegionSpec("sp", "sao-paulo", 1, 10),
    RegionSpec("rj", "rio", 2, 50, read_only=True),
    RegionSpec("sc", "santa-catarina", 3, 80),
]


def book(**policy: object) -> GroupBook:
    return GroupBook("emp", REGIONS, GroupPolicy(**policy))  # type: ignore[arg-type]


def fail(b: GroupBook, region: str, times: int, at: datetime, step: timedelta = S) -> list[object]:
    return [e for n in range(times) if (e := b.record_failure(region, "refused", at + n * step)) is not None]


def test_failures_inside_the_window_fail_over_and_older_ones_do_not_count() -> None:
    b = book()
    assert fail(b, "sp", 4, T0) == []
    assert b.record_failure("sp", "refused", T0 + 61 * S) is None  # the first ones left the window
    assert b.current == "sp"
    assert fail(b, "sp", 3, T0 + 70 * S) == []  # 61, 70, 71, 72: four inside the window
    [event] = fail(b, "sp", 1, T0 + 73 * S)
    assert event.kind is EventKind.FAILOVER  # type: ignore[attr-defined]
    assert (event.from_region, event.to_region) == ("sp", "rj")  # type: ignore[attr-defined]
    assert "5 failures within 60s: refused" in event.reason  # type: ignore[attr-defined]
    assert b.current == "rj"


def test_a_region_that_does_not_answer_at_all_goes_down_at_once() -> None:
    b = book()
    event = b.record_failure("sp", "no answer within 500 ms", T0, timed_out=True)
    assert event is not None
    assert event.kind is EventKind.FAILOVER
    assert event.reason == "not answering: no answer within 500 ms"
    assert b.candidates(write=False) == ["rj", "sc"]  # the next queries do not wait on it again
    assert "sp" not in b.probes_due(T0 + 10 * S)  # half-open: a probe at the interval only
    assert b.record_failure("rj", "no answer", T0, timed_out=False) is None  # a refusal still counts


def test_the_chain_goes_on_and_then_everything_failed_names_each_region() -> None:
    b = book()
    fail(b, "sp", 5, T0)
    [event] = fail(b, "rj", 5, T0 + 10 * S)
    assert (event.to_region, b.current) == ("sc", "sc")  # type: ignore[attr-defined]
    [last] = fail(b, "sc", 5, T0 + 20 * S)
    assert last.kind is EventKind.ALL_REGIONS_FAILED  # type: ignore[attr-defined]
    assert b.candidates(write=False) == []
    assert b.all_failed_message() == (
        "all regions of group emp failed: sp (sao-paulo): refused; rj (rio): refused; sc (santa-catarina): refused"
    )


def test_a_down_region_gets_only_probes_at_the_interval() -> None:
    b = book()
    for region in ("rj", "sc"):
        b.record_probe(region, True, T0)
    fail(b, "sp", 5, T0)
    assert b.candidates(write=False) == ["rj", "sc"]
    assert b.probes_due(T0 + 10 * S) == []
    assert b.probes_due(T0 + 35 * S) == ["sp", "rj", "sc"]
    assert b.record_probe("sp", False, T0 + 35 * S, "still refused") is None
    assert b.probes_due(T0 + 40 * S) == ["rj", "sc"]
    assert b.probes_due(T0 + 66 * S) == ["sp", "rj", "sc"]


def test_failed_health_checks_of_a_live_region_count_toward_failover() -> None:
    b = book(max_failures=2)
    assert b.record_probe("sp", False, T0, "timeout") is None
    event = b.record_probe("sp", False, T0 + 30 * S, "timeout")
    assert event is not None
    assert (event.kind, b.current) == (EventKind.FAILOVER, "rj")


def test_failback_waits_for_continuous_health_for_the_delay() -> None:
    b = book(failback_delay=timedelta(minutes=5))
    fail(b, "sp", 5, T0)
    assert b.record_probe("sp", True, T0 + 30 * S) is None  # up again: routable, not yet current
    assert b.candidates(write=False) == ["rj", "sp", "sc"]
    assert b.record_probe("sp", True, T0 + 200 * S) is None
    b.record_probe("sp", False, T0 + 230 * S, "flap")  # a break starts the delay over
    assert b.record_probe("sp", True, T0 + 260 * S) is None
    assert b.record_probe("sp", True, T0 + 500 * S) is None
    event = b.record_probe("sp", True, T0 + 561 * S)
    assert event is not None
    assert (event.kind, event.from_region, event.to_region) == (EventKind.FAILBACK, "rj", "sp")
    assert b.current == "sp"


def test_without_auto_failback_only_an_operator_fails_back() -> None:
    b = book(auto_failback=False, failback_delay=timedelta(seconds=1))
    fail(b, "sp", 5, T0)
    assert b.record_probe("sp", True, T0 + 30 * S) is None
    assert b.record_probe("sp", True, T0 + 300 * S) is None
    assert b.current == "rj"
    event = b.failback(T0 + 301 * S)
    assert event is not None
    assert event.to_region == "sp"
    assert b.failback(T0 + 302 * S) is None  # already there


def test_writes_skip_read_only_regions_unless_the_server_says_otherwise() -> None:
    b = book()
    fail(b, "sp", 5, T0)
    assert b.candidates(write=True) == ["sc"]
    follow = book(follow_writable=True)
    fail(follow, "sp", 5, T0)
    follow.record_success("rj", T0, writable=True)  # promoted: pg_is_in_recovery() is false
    assert follow.candidates(write=True) == ["rj", "sc"]


def test_a_manual_failover_names_a_region_of_the_group() -> None:
    b = book()
    assert b.failover_to("sc", T0).to_region == "sc"
    with pytest.raises(ValueError, match="no region 'xx'"):
        b.failover_to("xx", T0)
    with pytest.raises(ValueError, match="lists a connection id twice"):
        GroupBook("g", [REGIONS[0], REGIONS[0]], GroupPolicy())


def test_reads_skip_a_replica_lagging_more_than_max_lag() -> None:
    b = book(max_lag=timedelta(seconds=2))
    fail(b, "sp", 5, T0)
    b.record_probe("rj", True, T0, lag=timedelta(seconds=30))
    b.record_probe("sc", True, T0, lag=timedelta(seconds=1))
    assert b.candidates(write=False) == ["sc"]  # rj is current, but too far behind
    b.record_probe("rj", True, T0 + 30 * S, lag=timedelta(0))
    assert b.candidates(write=False) == ["rj", "sc"]


def test_reads_can_rotate_or_go_to_the_nearest_region_and_writes_never_do() -> None:
    from takeover.domain.regions import ReadBalance

    rotating = book(read_balance=ReadBalance.ROUND_ROBIN)
    firsts = [rotating.candidates(write=False)[0] for _ in range(6)]
    assert sorted(set(firsts)) == ["rj", "sc", "sp"]
    assert firsts[:3] != firsts[3:4] * 3  # it moves on each time
    assert {rotating.candidates(write=True)[0] for _ in range(3)} == {"sp"}
    fail(rotating, "sc", 5, T0)  # a down region leaves the rotation
    assert {rotating.candidates(write=False)[0] for _ in range(4)} == {"sp", "rj"}

    nearest = book(read_balance=ReadBalance.LOWEST_LATENCY)
    assert nearest.candidates(write=False) == ["sp", "rj", "sc"]  # 10, 50, 80 ms
    fail(nearest, "sp", 5, T0)
    assert nearest.candidates(write=False) == ["rj", "sc"]


_OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(
            ["fail", "timeout", "probe_ok", "probe_bad", "promoted", "lag", "manual", "failback"]
        ),
        st.sampled_from(["sp", "rj", "sc"]),
        st.integers(0, 400),
    ),
    max_size=40,
)


@given(_OPERATIONS, st.sampled_from([ReadBalance.CURRENT, ReadBalance.LOWEST_LATENCY]), st.booleans())
def test_the_cached_routes_always_match_the_state(
    operations: list[tuple[str, str, int]], balance: ReadBalance, follow: bool
) -> None:
    b = book(max_failures=2, read_balance=balance, follow_writable=follow, max_lag=timedelta(seconds=5))
    for name, region, second in operations:
        at = T0 + second * S
        if name in ("fail", "timeout"):
            b.record_failure(region, "x", at, timed_out=name == "timeout")
        elif name in ("probe_ok", "probe_bad", "lag"):
            b.record_probe(region, name != "probe_bad", at, lag=timedelta(seconds=9 if name == "lag" else 0))
        elif name == "promoted":
            b.record_success(region, at, writable=True)
        elif name == "manual":
            b.failover_to(region, at)
        else:
            b.failback(at)
        for write in (False, True):
            assert b.candidates(write) == b._usable(write)
