from datetime import timedelta
from uuid import uuid4

import pytest

from takeover.domain.errors import InvalidTransition
from takeover.domain.failover import (
    TRANSITIONS,
    Advance,
    Complete,
    Fail,
    FailoverPolicy,
    FailoverStatus,
    FailoverView,
    Place,
    Wait,
    check_transition,
    decide,
)
from takeover.domain.models import InstanceState, NodeStatus
from tests.unit.factories import T0, failover, instance

POLICY = FailoverPolicy(
    stop_timeout=timedelta(seconds=30), restore_timeout=timedelta(seconds=60), max_attempts=2
)
S = FailoverStatus


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.PENDING, S.COMPLETED),
        (S.COMPLETED, S.FAILED),
        (S.FAILED, S.PENDING),
        (S.BACKING_UP, S.RESTORING),
        (S.PENDING, S.MIGRATING),
    ],
)
def test_transitions_outside_the_machine_are_refused(current: FailoverStatus, target: FailoverStatus) -> None:
    with pytest.raises(InvalidTransition):
        check_transition(current, target)


def test_terminal_states_allow_nothing_and_every_open_state_can_fail() -> None:
    assert TRANSITIONS[S.COMPLETED] == TRANSITIONS[S.FAILED] == frozenset()
    for state in (S.PENDING, S.BACKING_UP, S.MIGRATING, S.RESTORING):
        check_transition(state, S.FAILED)


def test_pending_starts_backing_up() -> None:
    src = uuid4()
    inst = instance(src)
    f = failover(inst.id, src)
    assert decide(f, FailoverView(inst, NodeStatus.OFFLINE, None), T0, POLICY) == Advance(S.BACKING_UP)


def test_a_dead_source_is_not_waited_for() -> None:
    src = uuid4()
    inst = instance(src, state=InstanceState.RUNNING)
    f = failover(inst.id, src, status=S.BACKING_UP)
    assert decide(f, FailoverView(inst, NodeStatus.OFFLINE, None), T0, POLICY) == Advance(S.MIGRATING)


def test_a_live_source_must_stop_the_instance_before_it_moves() -> None:
    src = uuid4()
    running = instance(src, state=InstanceState.RUNNING)
    f = failover(running.id, src, status=S.BACKING_UP)
    assert isinstance(decide(f, FailoverView(running, NodeStatus.DRAINING, None), T0, POLICY), Wait)
    stopped = instance(src, id=running.id, state=InstanceState.STOPPED)
    assert decide(f, FailoverView(stopped, NodeStatus.DRAINING, None), T0, POLICY) == Advance(S.MIGRATING)


def test_a_live_source_that_never_stops_fails_the_failover_rather_than_run_two_copies() -> None:
    src = uuid4()
    running = instance(src, state=InstanceState.RUNNING)
    f = failover(running.id, src, status=S.BACKING_UP)
    later = T0 + timedelta(seconds=31)
    decision = decide(f, FailoverView(running, NodeStatus.ONLINE, None), later, POLICY)
    assert isinstance(decision, Fail)
    assert "did not stop" in decision.error


def test_migrating_places_away_from_the_source_and_every_tried_node() -> None:
    src, tried = uuid4(), uuid4()
    inst = instance(src)
    f = failover(inst.id, src, status=S.MIGRATING, tried_node_ids=(tried,))
    assert decide(f, FailoverView(inst, NodeStatus.OFFLINE, None), T0, POLICY) == Place(
        frozenset({src, tried}), None
    )


def test_restoring_completes_when_the_target_reports_the_new_epoch_running() -> None:
    target = uuid4()
    inst = instance(target, state=InstanceState.RUNNING, epoch=2)
    f = failover(inst.id, uuid4(), status=S.RESTORING, target_node_id=target, targets_tried=1)
    assert decide(f, FailoverView(inst, NodeStatus.OFFLINE, NodeStatus.ONLINE), T0, POLICY) == Complete(None)


def test_restoring_waits_then_ends_the_attempt_on_timeout() -> None:
    """Whether another attempt follows is the strategy's call (tests/unit/test_strategies.py)."""
    target = uuid4()
    inst = instance(target, state=InstanceState.ASSIGNED, epoch=2)
    f = failover(inst.id, uuid4(), status=S.RESTORING, target_node_id=target, targets_tried=1)
    view = FailoverView(inst, NodeStatus.OFFLINE, NodeStatus.ONLINE)
    assert isinstance(decide(f, view, T0 + timedelta(seconds=59), POLICY), Wait)
    assert decide(f, view, T0 + timedelta(seconds=61), POLICY) == Advance(
        S.MIGRATING, "the target node did not report it running within 0:01:00"
    )


@pytest.mark.parametrize(
    ("state", "target_status"),
    [(InstanceState.FAILED, NodeStatus.ONLINE), (InstanceState.ASSIGNED, NodeStatus.OFFLINE)],
)
def test_a_target_that_fails_or_dies_is_replaced_at_once(
    state: InstanceState, target_status: NodeStatus
) -> None:
    target = uuid4()
    inst = instance(target, state=state, epoch=2)
    f = failover(inst.id, uuid4(), status=S.RESTORING, target_node_id=target, targets_tried=1)
    decision = decide(f, FailoverView(inst, NodeStatus.OFFLINE, target_status), T0, POLICY)
    assert isinstance(decision, Advance)
    assert decision.status is S.MIGRATING
    assert decision.problem is not None


def test_a_requested_target_is_tried_once() -> None:
    target = uuid4()
    inst = instance(target, state=InstanceState.FAILED, epoch=2)
    f = failover(
        inst.id,
        uuid4(),
        status=S.RESTORING,
        target_node_id=target,
        requested_target_id=target,
        targets_tried=1,
    )
    assert isinstance(decide(f, FailoverView(inst, NodeStatus.ONLINE, NodeStatus.ONLINE), T0, POLICY), Fail)


def test_a_deleted_instance_fails_its_failover() -> None:
    f = failover(uuid4(), uuid4(), status=S.BACKING_UP)
    assert decide(f, FailoverView(None, NodeStatus.OFFLINE, None), T0, POLICY) == Fail(
        "the instance was deleted"
    )


@pytest.mark.parametrize(
    ("state", "moves_on"),
    [
        (InstanceState.ASSIGNED, False),  # the agent may have started it since its last heartbeat
        (InstanceState.STARTING, False),
        (InstanceState.RUNNING, False),
        (InstanceState.STOPPING, False),  # still taking its final snapshot
        (InstanceState.STOPPED, True),
        (InstanceState.FAILED, True),
    ],
)
def test_a_live_source_must_report_the_handover_done(state: InstanceState, moves_on: bool) -> None:
    src = uuid4()
    inst = instance(src, state=state)
    f = failover(inst.id, src, status=S.BACKING_UP)
    decision = decide(f, FailoverView(inst, NodeStatus.ONLINE, None), T0, POLICY)
    assert decision == (
        Advance(S.MIGRATING) if moves_on else Wait("waiting for the source node to stop the instance")
    )


def test_completion_records_the_snapshot_the_target_restored() -> None:
    target = uuid4()
    inst = instance(target, epoch=2, restored_from="000000000001-20261122T000000000000Z-abcdef")
    f = failover(inst.id, uuid4(), status=S.RESTORING, target_node_id=target)
    assert decide(f, FailoverView(inst, NodeStatus.OFFLINE, NodeStatus.ONLINE), T0, POLICY) == Complete(
        "000000000001-20261122T000000000000Z-abcdef"
    )
