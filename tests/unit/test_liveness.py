"""The leader's own watch of each node's heartbeats (domain.liveness)."""

from datetime import timedelta
from uuid import uuid4

from takeover.domain.liveness import Liveness
from tests.unit.factories import T0


def test_silence_counts_from_the_last_change_the_leader_saw_not_from_the_stamp() -> None:
    watch, node = Liveness(max_gap=10), uuid4()
    assert watch.cycle(100.0, epoch=1)
    assert watch.silent_for(node, T0 - timedelta(hours=1), 100.0) == 0.0  # old stamp, first seen now
    assert not watch.cycle(105.0, epoch=1)
    assert watch.silent_for(node, T0 - timedelta(hours=1), 105.0) == 5.0
    assert not watch.cycle(108.0, epoch=1)
    assert watch.silent_for(node, T0 - timedelta(hours=2), 108.0) == 0.0  # any change, even backwards
    assert not watch.cycle(117.0, epoch=1)
    assert watch.silent_for(node, T0 - timedelta(hours=2), 117.0) == 9.0


def test_a_new_lease_a_gap_between_cycles_or_a_failed_cycle_starts_the_watch_again() -> None:
    watch, node = Liveness(max_gap=10), uuid4()
    watch.cycle(0.0, epoch=1)
    watch.silent_for(node, T0, 0.0)
    assert watch.cycle(9.0, epoch=2)  # another leader held the lease in between
    assert watch.silent_for(node, T0, 9.0) == 0.0
    assert watch.cycle(19.5, epoch=2)  # paused or starved past its lease: it was not watching
    assert watch.silent_for(node, T0, 19.5) == 0.0
    watch.interrupted()  # the store was away: what it missed is not the node's silence
    assert watch.cycle(20.0, epoch=2)
    assert watch.silent_for(node, T0, 20.0) == 0.0
    assert not watch.cycle(29.0, epoch=2)
    assert watch.silent_for(node, T0, 29.0) == 9.0


def test_deleted_nodes_are_forgotten() -> None:
    watch, kept, gone = Liveness(max_gap=10), uuid4(), uuid4()
    watch.cycle(0.0, epoch=1)
    watch.silent_for(kept, T0, 0.0)
    watch.silent_for(gone, T0, 0.0)
    watch.forget({kept})
    assert watch.silent_for(gone, T0, 5.0) == 0.0  # a stranger again
    assert watch.silent_for(kept, T0, 5.0) == 5.0
