"""Agent checks that need no control plane: workspace confinement, settings errors, what a start gets."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from uuid import uuid4

import pytest

from takeover.agent.agent import Agent
from takeover.agent.localstate import free_port
from takeover.agent.processes import ProcessRuntime
from takeover.agent.runner import RestartPolicy, Runner, listening, probe_host
from takeover.agent.settings import AgentSettings, load_agent_settings
from takeover.api.wire import DesiredInstance
from takeover.domain.models import InstanceSpec, InstanceState


def agent(tmp_path: Path) -> Agent:
    settings = AgentSettings(
        takeover_url="http://127.0.0.1:9",
        node_id=uuid4(),
        node_token="t",
        data_dir=tmp_path / "agent",
        snapshot_store=str(tmp_path / "snapshots"),
    )
    started = Agent(settings)
    started.fence.acknowledged(time.monotonic(), 60.0)  # as after its first heartbeat: it may start work
    return started


@pytest.mark.parametrize("workspace", ["..", "../../etc", "/etc"])
def test_a_workspace_outside_the_data_dir_is_refused(tmp_path: Path, workspace: str) -> None:
    a = agent(tmp_path)
    instance_id = str(uuid4())
    item = DesiredInstance.model_validate(
        {
            "id": instance_id,
            "name": "x",
            "epoch": 1,
            "spec": {"command": ["true"], "env": {}, "workspace": workspace},
        }
    )
    a.reconcile([item], {})
    runner = a.runners[instance_id]
    assert runner.state is InstanceState.FAILED
    assert runner.error is not None
    assert "is outside" in runner.error
    assert runner.handle is None
    assert not (tmp_path / "etc").exists()
    a.shutdown()


def test_missing_and_bad_variables_are_named_together(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TAKEOVER_URL", "NODE_ID", "NODE_TOKEN", "TAKEOVER_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NODE_MAX_INSTANCES", "0")
    with pytest.raises(SystemExit) as exc:
        load_agent_settings()
    message = str(exc.value)
    assert "TAKEOVER_URL" in message
    assert "NODE_MAX_INSTANCES" in message


def test_a_bad_port_range_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAKEOVER_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("NODE_PORT_RANGE", "30000-20000")
    with pytest.raises(SystemExit, match="NODE_PORT_RANGE 30000-20000"):
        load_agent_settings()


def runner_for(tmp_path: Path, spec: InstanceSpec, gpus: tuple[int, ...], node_has_gpus: bool) -> Runner:
    runner = Runner("i", "web", 1, spec, tmp_path, 20001, tmp_path / "log", RestartPolicy(), ProcessRuntime())
    runner.gpu_indices, runner.node_has_gpus, runner.image_ref = gpus, node_has_gpus, "busybox@sha256:00"
    return runner


def test_a_process_sees_only_the_gpus_it_holds() -> None:
    tmp = Path("/nonexistent")
    held = runner_for(tmp, InstanceSpec(("python3",)), (1, 3), True).launch()
    assert held.env["CUDA_VISIBLE_DEVICES"] == "1,3"
    none = runner_for(tmp, InstanceSpec(("python3",)), (), True).launch()
    assert none.env["CUDA_VISIBLE_DEVICES"] == ""  # on a GPU node, a process that asked for none
    assert "CUDA_VISIBLE_DEVICES" not in runner_for(tmp, InstanceSpec(("python3",)), (), False).launch().env


def test_an_instance_listens_where_the_node_says_and_is_checked_there() -> None:
    runner = runner_for(Path("/nonexistent"), InstanceSpec(("python3",)), (), False)
    runner.host = "0.0.0.0"
    assert runner.launch().env["HOST"] == "0.0.0.0"
    runner.spec = InstanceSpec(("python3",), env={"HOST": "127.0.0.1"})
    assert runner.launch().env["HOST"] == "127.0.0.1"  # the spec's own choice wins
    assert probe_host("0.0.0.0") == "127.0.0.1"
    assert probe_host("::") == "::1"
    with socket.socket() as listener:
        listener.bind(("127.0.0.2", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert listening("127.0.0.2", port)
        assert not listening("127.0.0.1", port)  # not where it listens


def test_a_container_gets_its_gpus_as_devices_and_its_workspace_at_the_mount_path() -> None:
    spec = InstanceSpec((), image="busybox", mount_path="/data")
    launch = runner_for(Path("/nonexistent"), spec, (2,), True).launch()
    assert launch.gpus == (2,)
    assert "CUDA_VISIBLE_DEVICES" not in launch.env  # CDI numbers its devices from 0
    assert launch.env["TAKEOVER_WORKSPACE"] == "/data"
    assert launch.image == "busybox@sha256:00"


def test_behind_nat_an_endpoint_and_the_witness_name_the_outside_ports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TAKEOVER_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("NODE_PORT_MAP", "20000:41873, 7947/udp:40112")
    settings = load_agent_settings()
    assert settings.outside(20000) == 41873
    assert settings.outside(20001) == 20001  # not mapped: itself
    assert settings.outside(7947) == 7947  # the TCP port 7947 is another port
    assert settings.outside(7947, udp=True) == 40112
    monkeypatch.setenv("NODE_PORT_MAP", "20000-41873")
    with pytest.raises(SystemExit, match="NODE_PORT_MAP"):
        load_agent_settings()


def test_a_node_that_is_the_image_runs_its_command_as_a_process(tmp_path: Path) -> None:
    spec = InstanceSpec(("/app/serve",), image="localhost/web:1")
    runner = runner_for(tmp_path, spec, (), False)
    runner.native = True
    launch = runner.launch()
    assert launch.image is None  # no container: the command, as a process of this machine
    assert launch.command == ("/app/serve",)
    assert launch.env["TAKEOVER_WORKSPACE"] == str(tmp_path)  # its own workspace, not the mount path


def test_a_free_port_is_one_nobody_listens_on_where_the_instance_will() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.2", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert free_port((port, port), set(), "127.0.0.2") == 0
        assert free_port((port, port), set(), "127.0.0.3") == port  # another address of the machine
        assert free_port((port, port), {port}, "127.0.0.3") == 0  # another runner's


def test_an_agent_and_the_cli_start_without_loading_the_server() -> None:
    """A rented machine's join waits for its agent to start, and every CLI call for the CLI:
    neither may import the server, its store or a fake (they doubled their start-up once)."""
    heavy = ("fastapi", "sqlalchemy", "alembic", "takeover.store", "takeover.main", "takeover.testing")
    for modules in ("takeover.agent.agent, takeover.cli.agent, takeover.logsetup", "takeover.cli.app"):
        probe = f"import sys, {modules}; print(','.join(m for m in {heavy!r} if m in sys.modules))"
        loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
        assert loaded.stdout.strip() == "", (modules, loaded.stdout)
