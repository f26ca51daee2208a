"""The runtime port's contract, held against each adapter and the real thing behind it.

process: a child process. podman: Debian's podman with runc, on a storage of the test session's
own. docker: a real dockerd the session starts in a temporary directory (Debian's docker.io)
and stops by PID. The workload is the counter (examples/counter.py; its image for containers).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest

from takeover.agent.containers import ContainerRuntime, decode_k8s_file
from takeover.agent.keeper import write_deadline
from takeover.agent.processes import ProcessRuntime
from takeover.agent.runtime import Launch, LaunchError, Leftover, Runtime
from takeover.examples.image import COUNTER_IMAGE, import_counter_image
from takeover.localcluster import free_port, wait_until

PODMAN_OPTIONS = "--storage-driver vfs --runtime runc --cgroup-manager cgroupfs --events-backend file"


@dataclass
class Subject:
    runtime: Runtime
    fence: Path | None  # the keepers' deadline file
    image: str | None  # containers: the counter image, pinned


@pytest.fixture(scope="session")
def podman_options() -> Iterator[str]:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (./dev test installs it)")
    base = Path(tempfile.mkdtemp(prefix="tkp-"))  # podman refuses a runroot over 50 characters
    conf = base / "containers.conf"
    conf.write_text("[containers]\ndefault_ulimits = []\n")
    before = os.environ.get("CONTAINERS_CONF")
    os.environ["CONTAINERS_CONF"] = str(conf)
    options = f"--root {base / 'root'} --runroot {base / 'run'} {PODMAN_OPTIONS}"
    import_counter_image(["podman", *options.split()])
    yield options
    subprocess.run(
        ["podman", *options.split(), "rm", "-a", "-f", "--time", "0"], capture_output=True, check=False
    )
    if before is None:
        del os.environ["CONTAINERS_CONF"]
    else:
        os.environ["CONTAINERS_CONF"] = before
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def docker_options() -> Iterator[str]:
    if shutil.which("dockerd") is None:
        pytest.skip("dockerd is not installed (./dev test installs Debian's docker.io)")
    base = Path(tempfile.mkdtemp(prefix="tkd-"))
    sock = f"unix://{base}/docker.sock"
    with open(base / "dockerd.log", "wb") as log:
        daemon = subprocess.Popen(
            [
                "dockerd",
                f"--data-root={base}/data",
                f"--exec-root={base}/exec",
                f"--pidfile={base}/docker.pid",
                f"--host={sock}",
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--storage-driver=vfs",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    options = f"--host {sock}"

    def up() -> bool:
        if daemon.poll() is not None:
            raise RuntimeError(f"dockerd exited: {(base / 'dockerd.log').read_text()[-2000:]}")
        return (
            subprocess.run(["docker", *options.split(), "info"], capture_output=True, check=False).returncode
            == 0
        )

    try:
        wait_until(up, 60, "dockerd to answer")
        import_counter_image(["docker", *options.split()])
        yield options
        subprocess.run(
            ["docker", *options.split(), "rm", "-f", *_all(options)], capture_output=True, check=False
        )
    finally:
        daemon.terminate()
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        subprocess.run(["umount", "-R", f"{base}/exec"], capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)


def _all(options: str) -> list[str]:
    out = subprocess.run(
        ["docker", *options.split(), "ps", "-aq"], capture_output=True, text=True, check=False
    ).stdout
    return out.split()


@pytest.fixture(params=["process", "podman", "docker"])
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    fence = tmp_path / "fence"
    write_deadline(fence, time.monotonic() + 600)
    if request.param == "process":
        yield Subject(ProcessRuntime(fence_path=fence), fence, None)
        return
    options = request.getfixturevalue(f"{request.param}_options")
    runtime = ContainerRuntime(request.param, options, fence, 1.0)
    image, _ = runtime.resolve(COUNTER_IMAGE, None)
    yield Subject(runtime, fence, image)
    for left in runtime.leftovers("contract"):
        runtime.remove(left)


def launch(subject: Subject, tmp_path: Path, command: tuple[str, ...] = (), epoch: int = 1) -> Launch:
    workspace = tmp_path / f"workspace-{epoch}"
    workspace.mkdir(exist_ok=True)
    port = free_port()
    container = subject.image is not None
    if not container and not command:
        command = (sys.executable, "-m", "takeover.examples.counter")
    env = {
        "PORT": str(port),
        "TAKEOVER_INSTANCE_ID": "contract-instance",
        "TAKEOVER_EPOCH": str(epoch),
        "TAKEOVER_WORKSPACE": "/workspace" if container else str(workspace),
    }
    return Launch(
        "contract-instance",
        epoch,
        command,
        env,
        workspace,
        port,
        tmp_path / f"out-{epoch}.log",
        image=subject.image,
        labels={"takeover.node": "contract"},
    )


def answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/count", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def output(subject: Subject, path: Path) -> str:
    return subject.runtime.decode_log(path.read_bytes()) if path.exists() else ""


def test_it_runs_the_workload_with_its_environment_and_workspace(subject: Subject, tmp_path: Path) -> None:
    spec = launch(subject, tmp_path)
    handle = subject.runtime.start(spec)
    try:
        wait_until(lambda: answers(spec.port), 30, "the workload to listen on $PORT")
        assert httpx.get(f"http://127.0.0.1:{spec.port}/", timeout=5).json()["count"] == 1
        assert (spec.workspace / "count").read_text().strip() == "1"  # state lands in the workspace
        assert handle.exit_code() is None
        assert "1" in (spec.workspace / "runs.log").read_text()  # it saw TAKEOVER_EPOCH
    finally:
        handle.signal(signal.SIGKILL)
        assert handle.wait(20)
    assert handle.exit_code() not in (None, 0)


def test_the_workload_s_environment_is_its_launch_s_and_nothing_of_the_agent_s(
    subject: Subject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAKEOVER_TOKEN", "tko_the_agents_admin_token")  # an operator's shell exported it
    monkeypatch.setenv("AGENT_ONLY", "the agent's")
    spec = launch(subject, tmp_path, ("sh", "-c", "export -p"))
    spec = replace(spec, env={**spec.env, "PEM": "line one\nline two", "URL": "a=b c"})
    handle = subject.runtime.start(spec)
    assert handle.wait(20)
    text = wait_until(lambda: "URL" in (t := output(subject, handle.log_path)) and t, 10, "the output")
    assert "tko_the_agents_admin_token" not in text
    assert "AGENT_ONLY" not in text
    assert "export PEM='line one\nline two'" in text
    assert "export URL='a=b c'" in text


def test_its_output_reaches_its_log_in_order(subject: Subject, tmp_path: Path) -> None:
    """Both streams, each in order (a container's two pipes are not ordered between them)."""
    spec = launch(subject, tmp_path, ("sh", "-c", "echo first; echo to-stderr >&2; echo second; echo third"))
    handle = subject.runtime.start(spec)
    assert handle.wait(20)
    assert handle.exit_code() == 0
    text = wait_until(lambda: "third" in (t := output(subject, handle.log_path)) and t, 10, "the output")
    lines = text.splitlines()
    assert [line for line in lines if line != "to-stderr"] == ["first", "second", "third"]
    assert "to-stderr" in lines


def test_an_exit_code_is_reported_once_it_ends(subject: Subject, tmp_path: Path) -> None:
    handle = subject.runtime.start(launch(subject, tmp_path, ("sh", "-c", "sleep 0.2; exit 3")))
    assert handle.wait(20)
    assert handle.exit_code() == 3
    assert subject.runtime.leftovers("contract") == []  # an ended container is deleted


def test_sigterm_is_delivered_and_sigkill_always_ends_it(subject: Subject, tmp_path: Path) -> None:
    script = "trap 'echo got TERM; exit 0' TERM; echo ready; while :; do sleep 0.1; done"
    handle = subject.runtime.start(launch(subject, tmp_path, ("sh", "-c", script)))
    wait_until(lambda: "ready" in output(subject, handle.log_path), 20, "the trap to be set")
    handle.signal(signal.SIGTERM)
    assert handle.wait(10)
    assert handle.exit_code() == 0
    assert "got TERM" in output(subject, handle.log_path)

    stubborn = subject.runtime.start(
        launch(subject, tmp_path, ("sh", "-c", "trap '' TERM; echo ignoring; sleep 600"), 2)
    )
    wait_until(lambda: "ignoring" in output(subject, stubborn.log_path), 20, "SIGTERM to be ignored")
    stubborn.signal(signal.SIGTERM)
    assert not stubborn.wait(0.5)
    stubborn.signal(signal.SIGKILL)
    assert stubborn.wait(20)


def test_a_missing_program_is_a_launch_error_and_leaves_nothing(subject: Subject, tmp_path: Path) -> None:
    with pytest.raises(LaunchError, match="no-such-program"):
        subject.runtime.start(launch(subject, tmp_path, ("/no-such-program",)))
    assert subject.runtime.leftovers("contract") == []


def containers_only(subject: Subject) -> ContainerRuntime:
    if not isinstance(subject.runtime, ContainerRuntime):
        pytest.skip("containers only: a process dies with its agent (PR_SET_PDEATHSIG), never adopted")
    return subject.runtime


def test_an_image_resolves_to_a_pinned_reference_that_runs(subject: Subject) -> None:
    runtime = containers_only(subject)
    ref, digest = runtime.resolve(COUNTER_IMAGE, None)
    assert digest.startswith("sha256:")
    assert runtime.resolve(COUNTER_IMAGE, digest) == (ref, digest)  # pinned: the same again
    with pytest.raises(LaunchError, match=r"could not be pulled"):
        runtime.resolve("127.0.0.1:9/takeover/missing:1", None)  # no registry answers there


def test_a_new_life_finds_adopts_and_removes_what_an_earlier_one_left(
    subject: Subject, tmp_path: Path
) -> None:
    runtime = containers_only(subject)
    spec = launch(subject, tmp_path)
    runtime.start(spec)
    wait_until(lambda: answers(spec.port), 30, "the workload")
    later = ContainerRuntime(runtime.flavor, " ".join(runtime.cli[1:]), runtime.fence_path, 1.0)
    [found] = later.leftovers("contract")
    assert found == Leftover(f"takeover-{spec.instance_id}-1", spec.instance_id, 1, True)
    assert later.leftovers("another-node") == []
    adopted = later.adopt(found, spec.log_path)
    assert adopted.exit_code() is None
    assert answers(spec.port)
    later.remove(found)
    assert adopted.wait(10)
    assert later.leftovers("contract") == []
    assert not answers(spec.port)


def test_the_keeper_stops_it_once_the_fence_deadline_passes(subject: Subject, tmp_path: Path) -> None:
    """Whatever the agent does meanwhile (killed, hung, starved): a keeper outside its life."""
    runtime = subject.runtime
    assert subject.fence is not None
    spec = launch(subject, tmp_path)
    handle = runtime.start(spec)
    wait_until(lambda: answers(spec.port), 30, "the workload")
    time.sleep(0.5)
    assert handle.exit_code() is None  # the deadline is ahead: it keeps running
    write_deadline(subject.fence, time.monotonic() - 1)  # as if the agent stopped renewing it
    assert handle.wait(5)  # SIGTERM, then SIGKILL after the 1 s grace
    assert not answers(spec.port)


def test_log_frames_are_decoded() -> None:
    podman = b"2026-12-02T17:16:50.36+00:00 stdout F hello\n2026-12-02T17:16:50.37+00:00 stderr P par\n"
    podman += b"2026-12-02T17:16:50.38+00:00 stderr F tial\n2026-12-02T17:16:50.39+00:00 stdout F \n"
    assert decode_k8s_file(podman) == "hello\npartial\n\n"
