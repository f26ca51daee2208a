"""What a node is told to run, hand over and keep warm: the rules behind every heartbeat's reply."""

from __future__ import annotations

from dataclasses import replace
from uuid import UUID, uuid4

from hypothesis import given
from hypothesis import strategies as st

from takeover.domain.desired import DesiredState, Handover, desired_states, keeps_warm, releases
from takeover.domain.failover import FailoverStatus
from takeover.domain.models import Instance
from tests.unit.factories import instance

A, B, C = uuid4(), uuid4(), uuid4()


def test_the_live_source_of_a_failover_backing_up_releases_its_instance() -> None:
    web = instance(A)
    assert releases(web, Handover(web.id, A, FailoverStatus.BACKING_UP))


def test_nothing_is_released_past_backing_up_or_by_a_node_the_instance_has_left() -> None:
    web = instance(A)
    assert not releases(web, None)
    for status in (FailoverStatus.PENDING, FailoverStatus.MIGRATING, FailoverStatus.RESTORING):
        assert not releases(web, Handover(web.id, A, status))
    assert not releases(replace(web, node_id=B), Handover(web.id, A, FailoverStatus.BACKING_UP))
    assert not releases(replace(web, node_id=None), Handover(web.id, None, FailoverStatus.BACKING_UP))
    assert not releases(web, Handover(uuid4(), A, FailoverStatus.BACKING_UP)), "another instance's failover"


def test_a_standby_is_kept_by_the_node_it_names_and_never_by_the_runner() -> None:
    web = instance(A, standby_node_id=B)
    assert keeps_warm(web, B)
    assert not keeps_warm(web, A)
    assert not keeps_warm(replace(web, node_id=B), B), "one copy cannot be both"


def test_each_node_runs_hands_over_and_keeps_warm_its_own() -> None:
    web, db, cache = (
        instance(A, name="web"),
        instance(A, name="db", standby_node_id=B),
        instance(B, name="cache"),
    )
    states = desired_states(
        [A, B, C], [web, db, cache], [Handover(db.id, A, FailoverStatus.BACKING_UP)], [db]
    )
    assert states == {
        A: DesiredState(run=(web,), release=(db,)),
        B: DesiredState(run=(cache,), standby=(db,)),
        C: DesiredState(),
    }


@given(
    st.lists(
        st.tuples(
            st.sampled_from([A, B, C, None]),
            st.sampled_from([A, B, C, None]),
            st.sampled_from([None, *FailoverStatus]),
            st.sampled_from([A, B, C, None]),
        ),
        max_size=12,
    )
)
def test_every_placed_instance_is_either_run_or_released_by_its_node_alone(
    rows: list[tuple[UUID | None, UUID | None, FailoverStatus | None, UUID | None]],
) -> None:
    held: list[Instance] = []
    handovers: list[Handover] = []
    for node_id, standby, status, source in rows:
        inst = instance(node_id, standby_node_id=standby)
        held.append(inst)
        if status is not None:
            handovers.append(Handover(inst.id, source, status))
    states = desired_states([A, B, C], held, handovers, held)
    for inst in held:
        for node_id, state in states.items():
            placed = inst in state.run or inst in state.release
            assert placed == (inst.node_id == node_id)
            assert not (inst in state.run and inst in state.release)
            assert (inst in state.standby) == keeps_warm(inst, node_id)
