"""What one runner's report changes on its instance."""

from dataclasses import replace
from uuid import uuid4

from takeover.domain.heartbeat import Heartbeat, InstanceReport, report_changes, score_of
from takeover.domain.models import InstanceSpec, InstanceState
from takeover.domain.snapshots import empty_start_refusal, newest_snapshot
from tests.unit.factories import instance

SNAP = "000000000001-20261122T000000000000Z-abcdef"


def test_a_running_report_with_a_port_sets_the_endpoint() -> None:
    node = uuid4()
    inst = instance(node, state=InstanceState.STARTING)
    report = InstanceReport(inst.id, 1, InstanceState.RUNNING, port=20001, restored_from=SNAP)
    assert report_changes(inst, node, report, "10.0.0.5") == {
        "state": InstanceState.RUNNING,
        "endpoint": "10.0.0.5:20001",
        "restored_from": SNAP,
        "recovery_point": SNAP,
    }


def test_the_agent_s_host_wins_over_the_node_s_registered_one() -> None:
    node = uuid4()
    inst = instance(node, state=InstanceState.RUNNING)
    report = InstanceReport(inst.id, 1, InstanceState.RUNNING, port=20001, host="203.0.113.7")
    assert report_changes(inst, node, report, "10.0.0.5")["endpoint"] == "203.0.113.7:20001"
    v6 = replace(report, host="2001:db8::7")
    assert report_changes(inst, node, v6, "10.0.0.5")["endpoint"] == "[2001:db8::7]:20001"


def test_a_starting_runner_has_no_endpoint_yet() -> None:
    node = uuid4()
    inst = instance(node, state=InstanceState.ASSIGNED)
    report = InstanceReport(inst.id, 1, InstanceState.STARTING, port=20001)
    assert report_changes(inst, node, report, "h") == {"state": InstanceState.STARTING}


def test_an_unchanged_report_changes_nothing() -> None:
    node = uuid4()
    inst = instance(node, endpoint="h:1", last_snapshot=SNAP)
    assert report_changes(inst, node, InstanceReport(inst.id, 1, InstanceState.RUNNING, port=1), "h") == {}


def test_a_report_of_an_older_epoch_changes_nothing() -> None:
    node = uuid4()
    inst = instance(node, epoch=2, state=InstanceState.ASSIGNED)
    stale = InstanceReport(inst.id, 1, InstanceState.RUNNING, port=1, error="boom")
    assert report_changes(inst, node, stale, "h") == {}


def test_a_runner_gone_from_the_report_is_stopped_and_loses_its_endpoint() -> None:
    node = uuid4()
    inst = instance(node, endpoint="h:1")
    assert report_changes(inst, node, None, "h") == {"state": InstanceState.STOPPED, "endpoint": None}


def test_another_nodes_report_is_ignored() -> None:
    inst = instance(uuid4())
    assert report_changes(inst, uuid4(), InstanceReport(inst.id, 1, InstanceState.FAILED), "h") == {}


def test_a_failure_carries_its_error() -> None:
    node = uuid4()
    inst = instance(node, endpoint="h:1")
    report = InstanceReport(inst.id, 1, InstanceState.FAILED, error="command not found: nope")
    assert report_changes(inst, node, report, "h") == {
        "state": InstanceState.FAILED,
        "endpoint": None,
        "last_error": "command not found: nope",
    }


LATER = "000000000002-20261122T000000000000Z-abcdef"


def test_the_recovery_point_is_the_newest_snapshot_ever_reported_and_survives_moves() -> None:
    node = uuid4()
    inst = instance(node, epoch=2, recovery_point=LATER)
    older = InstanceReport(inst.id, 2, InstanceState.RUNNING, restored_from=SNAP)
    assert "recovery_point" not in report_changes(inst, node, older, "h")  # never moves backwards
    newer = "000000000002-20261123T000000000000Z-abcdef"
    taken = InstanceReport(inst.id, 2, InstanceState.RUNNING, last_snapshot=newer)
    assert report_changes(inst, node, taken, "h")["recovery_point"] == newer


def test_an_empty_start_is_allowed_only_until_the_instance_has_data_again() -> None:
    node = uuid4()
    inst = instance(node, recovery_point=SNAP, start_empty=True, state=InstanceState.RUNNING)
    running = InstanceReport(inst.id, 1, InstanceState.RUNNING)
    assert "start_empty" not in report_changes(inst, node, running, "h")
    snapshotted = InstanceReport(inst.id, 1, InstanceState.RUNNING, last_snapshot=LATER)
    assert report_changes(inst, node, snapshotted, "h")["start_empty"] is False


def test_a_runner_may_start_empty_only_where_nothing_is_lost() -> None:
    assert empty_start_refusal(None, [], start_empty=False) is None  # a new instance
    refused = empty_start_refusal(SNAP, [], start_empty=False)
    assert refused is not None
    assert SNAP in refused
    assert "--start-empty" in refused
    damaged = empty_start_refusal(None, ["snapshot x: unreadable manifest"], start_empty=False)
    assert damaged is not None
    assert "unreadable manifest" in damaged
    assert empty_start_refusal(SNAP, ["snapshot x: damaged"], start_empty=True) is None  # the admin chose


def test_newest_snapshot_orders_by_epoch_then_time_and_skips_junk() -> None:
    assert newest_snapshot(None, LATER, SNAP, "junk") == LATER
    assert newest_snapshot(None, "") is None


DIGEST = "sha256:" + "ab" * 32


def test_the_first_runner_pins_its_image_digest_and_later_ones_change_nothing() -> None:
    node = uuid4()
    spec = InstanceSpec((), image="docker.io/pytorch/pytorch:latest")
    inst = instance(node, spec=spec, endpoint="h:1")
    report = InstanceReport(inst.id, 1, InstanceState.RUNNING, port=1, image_digest=DIGEST)
    changes = report_changes(inst, node, report, "h")
    assert changes == {"spec": replace(spec, image_digest=DIGEST)}
    pinned = replace(inst, spec=changes["spec"])
    other = InstanceReport(inst.id, 1, InstanceState.RUNNING, port=1, image_digest="sha256:" + "cd" * 32)
    assert report_changes(pinned, node, other, "h") == {}  # a moved tag does not move the pin


def test_a_process_instance_records_no_digest() -> None:
    node = uuid4()
    inst = instance(node, endpoint="h:1")
    report = InstanceReport(inst.id, 1, InstanceState.RUNNING, port=1, image_digest=DIGEST)
    assert report_changes(inst, node, report, "h") == {}


def test_a_fenced_agent_s_heartbeat_scores_zero() -> None:
    """It runs nothing: nothing is placed there, and its instances move after a streak of these."""
    calm = Heartbeat(uuid4(), cpu_load=0.1, memory_load=0.1, avg_latency_ms=5.0)
    assert score_of(calm) > 50
    assert score_of(replace(calm, fenced=True)) == 0.0


def test_a_failing_snapshot_is_reported_and_cleared_by_the_next_good_one() -> None:
    node = uuid4()
    inst = instance(node, state=InstanceState.RUNNING)
    full = InstanceReport(
        inst.id, 1, InstanceState.RUNNING, snapshot_error="[Errno 28] No space left on device"
    )
    assert report_changes(inst, node, full, "h")["snapshot_error"] == "[Errno 28] No space left on device"
    failing = replace(inst, snapshot_error="[Errno 28] No space left on device")
    good = InstanceReport(inst.id, 1, InstanceState.RUNNING, last_snapshot=SNAP)
    assert report_changes(failing, node, good, "h")["snapshot_error"] is None
