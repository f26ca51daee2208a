"""The agent's decisions as values: what a reply asks of the node, when a snapshot is due."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from takeover.agent.plan import Act, Action, Held, Snapshot, plan, snapshot_due
from takeover.domain.models import InstanceState


def test_stops_come_before_starts_and_a_moved_epoch_is_stopped_then_started() -> None:
    actions = plan({"a": 2, "b": 1}, {}, {"a": Held(1), "c": Held(4)}, busy=set())
    assert actions == [
        Action(Act.STOP, "a"),
        Action(Act.STOP, "c"),
        Action(Act.START, "a"),
        Action(Act.START, "b"),
    ]


def test_a_release_at_the_running_epoch_is_a_handover_once() -> None:
    assert plan({}, {"a": 3}, {"a": Held(3)}, set()) == [Action(Act.HAND_OVER, "a")]
    assert plan({}, {"a": 3}, {"a": Held(3, released=True)}, set()) == []  # already handing over
    assert plan({}, {"a": 2}, {"a": Held(3)}, set()) == [Action(Act.STOP, "a")]  # an older epoch's release


def test_a_called_off_handover_resumes_and_a_busy_workspace_waits() -> None:
    assert plan({"a": 3}, {}, {"a": Held(3, released=True)}, set()) == [Action(Act.RESUME, "a")]
    assert plan({"a": 1}, {}, {}, busy={"a"}) == []  # a restore or a warm sync still writes it


@given(
    st.dictionaries(st.sampled_from("abcd"), st.integers(1, 3)),
    st.dictionaries(st.sampled_from("abcd"), st.integers(1, 3)),
    st.dictionaries(st.sampled_from("abcd"), st.builds(Held, st.integers(1, 3), st.booleans())),
    st.sets(st.sampled_from("abcd")),
)
def test_never_two_runners_and_nothing_undesired_keeps_running(
    desired: dict[str, int], release: dict[str, int], running: dict[str, Held], busy: set[str]
) -> None:
    actions = plan(desired, release, running, busy)
    acts = {(a.act, a.instance_id) for a in actions}
    for instance_id, held in running.items():
        stays = (Act.STOP, instance_id) not in acts
        if stays:  # what keeps running is desired at its epoch, or handed over at its epoch
            assert desired.get(instance_id) == held.epoch or release.get(instance_id) == held.epoch
            assert (Act.START, instance_id) not in acts
    starts = [a for a in actions if a.act is Act.START]
    assert all(a.instance_id in desired and a.instance_id not in busy for a in starts)
    assert actions[: len(actions) - len(starts)] == [a for a in actions if a.act is not Act.START]


def test_a_snapshot_is_due_every_interval_or_on_request() -> None:
    running = InstanceState.RUNNING
    assert snapshot_due(10.0, running, False, None, None, None) is Snapshot.PERIODIC  # never taken
    assert snapshot_due(10.0, running, False, 12.0, None, None) is None
    assert snapshot_due(12.0, running, False, 12.0, None, None) is Snapshot.PERIODIC
    assert snapshot_due(10.0, running, False, 12.0, "req-1", None) is Snapshot.PERIODIC  # on demand
    assert snapshot_due(10.0, running, False, 12.0, "req-1", "req-1") is None  # served once
    assert snapshot_due(10.0, InstanceState.STARTING, False, None, "req-1", None) is None


def test_a_handover_s_final_snapshot_is_retried_when_due() -> None:
    stopping = InstanceState.STOPPING
    assert snapshot_due(5.0, stopping, True, None, None, None) is Snapshot.FINAL
    assert snapshot_due(5.0, stopping, True, 6.0, None, None) is None  # the retry's backoff
    assert snapshot_due(6.0, stopping, True, 6.0, None, None) is Snapshot.FINAL
    assert snapshot_due(6.0, stopping, False, None, None, None) is None  # not a handover
