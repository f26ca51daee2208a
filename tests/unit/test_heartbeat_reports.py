"""What one runner's report changes on its instance."""

from uuid import uuid4

from takeover.domain.heartbeat import InstanceReport, report_changes
from takeover.domain.models import InstanceState
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
    }


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
