"""domain.witnesses: the agent's vouch and the control plane's proof apply one predicate."""

import random
from datetime import timedelta
from uuid import UUID, uuid4

from takeover.domain.witnesses import Answer, choose, fence_proven, quorum, vouched_until, vouches
from tests.unit.factories import T0

LAG = timedelta(seconds=45)


def test_a_witness_vouches_unless_it_heard_from_the_control_plane_well_after_the_asker() -> None:
    assert vouches(T0 + LAG, T0, LAG)
    assert vouches(T0 - timedelta(hours=1), T0, LAG)  # it lost the control plane first
    assert not vouches(T0 + LAG + timedelta(seconds=1), T0, LAG)
    assert not vouches(None, T0, LAG)  # restarted since: nobody can tell what it held
    assert not vouches(T0, None, LAG)  # the asker never heard from the control plane


def test_a_quorum_of_vouching_answers_lasts_a_lease_from_the_quorum_th_newest_probe() -> None:
    a, b, c = uuid4(), uuid4(), uuid4()
    answers = [Answer(a, 10.0, T0), Answer(b, 12.0, T0), Answer(c, 14.0, T0 + timedelta(hours=1))]
    assert quorum(3) == 2
    assert vouched_until(answers, {a, b, c}, T0, LAG, 30.0) == 40.0  # b's and a's: a's is older
    assert vouched_until(answers[:1], {a, b, c}, T0, LAG, 30.0) is None
    later = [*answers, Answer(a, 20.0, T0 + timedelta(hours=1))]  # a heard from it since
    assert vouched_until(later, {a, b, c}, T0, LAG, 30.0) is None
    assert vouched_until(answers, set(), T0, LAG, 30.0) is None
    stranger = [Answer(uuid4(), 50.0, T0), Answer(uuid4(), 50.0, T0)]  # not its witnesses
    assert vouched_until(answers[:1] + stranger, {a, b, c}, T0, LAG, 30.0) is None


def test_a_fence_is_proven_when_enough_witnesses_outdated_it_a_lease_ago_in_every_set() -> None:
    a, b, c, d = uuid4(), uuid4(), uuid4(), uuid4()
    newer: dict[UUID, float] = {a: 100.0, b: 105.0}
    assert fence_proven([(a, b, c)], T0, newer, wait=20.0, at=125.0)  # 2 of 3: a quorum cannot vouch
    assert not fence_proven([(a, b, c)], T0, newer, wait=20.0, at=124.0)  # b's evidence too fresh
    assert not fence_proven([(a, b, c), (b, c, d)], T0, newer, wait=20.0, at=200.0)  # the new set
    assert not fence_proven([(a, c, d)], T0, newer, wait=20.0, at=200.0)
    assert fence_proven([(), ()], T0, {}, wait=20.0, at=0.0)  # no witnesses: the fence alone
    assert fence_proven([(a, b)], None, {}, wait=20.0, at=0.0)  # it never held an acknowledgement


def test_the_vouch_and_the_proof_never_both_let_a_node_run_and_fail_it_over() -> None:
    """Random stamps and times: wherever the leader proves a fence at ``at``, the answers the node
    can hold by then (each witness answers with what it held when asked) vouch no later."""
    rng, proven = random.Random(7), 0
    for _ in range(3000):
        witnesses = [uuid4() for _ in range(rng.randint(1, 5))]
        own = T0 + timedelta(seconds=rng.uniform(0, 100))
        held = {w: T0 + timedelta(seconds=rng.uniform(0, 200)) for w in witnesses}
        since = {w: rng.uniform(0, 100) for w in witnesses}  # held from then on; ``own`` before
        newer = {w: since[w] for w in witnesses if held[w] > own + LAG}
        at, wait = rng.uniform(50, 200), 30.0
        if not fence_proven([witnesses], own, newer, wait, at):
            continue
        proven += 1
        answers = [
            Answer(w, sent, held[w] if sent >= since[w] else own)
            for w in witnesses
            for sent in sorted(rng.uniform(0, at) for _ in range(4))
        ]
        until = vouched_until(answers, set(witnesses), own, LAG, wait)
        assert until is None or until <= at
    assert proven > 300  # the property was exercised


def test_witnesses_come_from_the_node_s_own_region_first_and_a_join_moves_few_sets() -> None:
    local = [(uuid4(), "a") for _ in range(3)]
    remote = [(uuid4(), "b") for _ in range(5)]
    chosen = choose([*remote, *local], 3)
    for member, _ in [*local, *remote]:
        assert member not in chosen[member]
        assert len(set(chosen[member])) == 3
    mine = {i for i, _ in local}
    for member in mine:  # two of its region's, one from the other: the region has 3
        assert len(set(chosen[member]) & mine) == 2
    assert all(set(chosen[m]) <= {i for i, _ in remote} for m, _ in remote)
    assert choose([*local, *remote], 3) == chosen  # the order given does not matter
    joined = choose([*local, *remote, (uuid4(), "b")], 3)
    moved = [m for m, _ in remote if joined[m] != chosen[m]]
    assert len(moved) <= 3
    assert choose([local[0]], 3) == {local[0][0]: ()}
