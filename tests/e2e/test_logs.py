"""JSON logs a log store can follow a failover by: its id and its instance's on every line of it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from takeover.localcluster import LocalCluster, wait_until

pytestmark = pytest.mark.e2e


def lines(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of a process's log (uvicorn's own lines are not JSON and are skipped)."""
    found = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            found.append(json.loads(line))
    return found


def test_every_line_of_a_failover_names_it_and_its_instance(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, extra_env={"TAKEOVER_LOG_FORMAT": "json"}) as cluster:
        cluster.start_control_plane()
        cluster.start_agent("a")
        web = cluster.create_counter("web")
        wait_until(lambda: cluster.serving(web["id"]), 30, "web to serve")
        cluster.snapshot_after(web["id"], 0)
        cluster.start_agent("b")
        cluster.kill_agent("a")
        wait_until(lambda: cluster.serving(web["id"], epoch=2), 30, "web to serve on b")
        [failover] = cluster.ended_failovers(web["id"])

    server = lines(tmp_path / "control-plane.log")
    of_failovers = [line for line in server if line["event"].startswith("failover ")]
    assert of_failovers[0]["event"] == "failover opened"
    assert of_failovers[-1]["event"] == "failover ended"
    assert of_failovers[-1]["status"] == "completed"
    for line in of_failovers:
        assert (line["failover_id"], line["instance_id"]) == (failover["id"], web["id"]), line
    restored = [line for line in lines(tmp_path / "agent-b.log") if line["event"] == "restoring"]
    assert [line["instance_id"] for line in restored] == [web["id"]]
