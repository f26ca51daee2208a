"""What a container costs beside a process: start to serving, and the agent's CPU per instance.

Start to serving: the runtime port's adapters directly (no control plane), the counter started
and polled every 5 ms until it answers on its port, ``--runs`` times each: a process (the
Python counter), a Podman container (the busybox counter image, runc, vfs storage).

CPU: one real agent on a real control plane supervising ``--instances`` containers (then as
many processes), its CPU seconds and its keepers' over ``--seconds``, per instance.

    .venv/bin/python -m bench.containers --runs 10 --instances 10 --seconds 30
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from bench.common import ROOT  # noqa: F401  (puts the repository on sys.path)
from takeover.agent.containers import ContainerRuntime
from takeover.agent.keeper import write_deadline
from takeover.agent.processes import ProcessRuntime
from takeover.agent.runtime import Launch, Runtime
from takeover.examples.image import COUNTER_IMAGE
from takeover.localcluster import LocalCluster, free_port, wait_until


def answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/count", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def start_to_serving(runtime: Runtime, image: str | None, root: Path, runs: int) -> list[float]:
    times = []
    for n in range(runs):
        workspace = root / f"w-{runtime.name}-{n}"
        workspace.mkdir()
        port = free_port()
        container = image is not None
        command = () if container else (sys.executable, "-m", "takeover.examples.counter")
        env = {
            "PORT": str(port),
            "TAKEOVER_EPOCH": "1",
            "TAKEOVER_INSTANCE_ID": f"bench-{n}",
            "TAKEOVER_WORKSPACE": "/workspace" if container else str(workspace),
        }
        launch = Launch(
            f"bench-{n}", 1, command, env, workspace, port, root / f"{runtime.name}-{n}.log", image
        )
        began = time.monotonic()
        handle = runtime.start(launch)
        while not answers(port):
            time.sleep(0.005)
        times.append(time.monotonic() - began)
        handle.signal(signal.SIGKILL)
        handle.wait(30)
    return times


def cpu_of(processes: list[psutil.Process]) -> float:
    total = 0.0
    for p in processes:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def supervision_cpu(root: Path, instances: int, seconds: float, containers: bool) -> tuple[float, float]:
    """(agent CPU s per instance-second, keepers' CPU s per instance-second)."""
    with LocalCluster(root, containers=containers) as cluster:
        cluster.start_control_plane()
        agent = cluster.start_agent("a", NODE_MAX_INSTANCES=str(instances + 1))
        ids = [cluster.create_counter(f"c{n}")["id"] for n in range(instances)]
        wait_until(lambda: all(cluster.serving(i) for i in ids), 120, "the counters to serve")
        me = psutil.Process(agent.process.pid)
        keepers = [
            p
            for p in psutil.process_iter(["cmdline"])
            if "takeover.agent.keeper" in " ".join(p.info["cmdline"] or [])
        ]
        a0, k0 = cpu_of([me]), cpu_of(keepers)
        time.sleep(seconds)
        a1, k1 = cpu_of([me]), cpu_of(keepers)
        return (a1 - a0) / seconds / instances, (k1 - k0) / seconds / instances


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--instances", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ctr-") as tmp:
        root = Path(tmp)
        cluster = LocalCluster(root / "image", containers=True)  # its Podman storage, with the image
        options = cluster.extra_env["NODE_CONTAINER_OPTIONS"]
        os.environ["CONTAINERS_CONF"] = cluster.extra_env["CONTAINERS_CONF"]
        fence = root / "fence"
        write_deadline(fence, time.monotonic() + 3600)
        podman = ContainerRuntime("podman", options, fence, 1.0)
        image, _ = podman.resolve(COUNTER_IMAGE, None)
        for name, runtime, ref in (("process", ProcessRuntime(), None), ("podman", podman, image)):
            times = start_to_serving(runtime, ref, root, args.runs)
            print(
                f"start to serving, {name:8s}: median {statistics.median(times) * 1000:6.0f} ms, "
                f"max {max(times) * 1000:6.0f} ms ({args.runs} runs)",
                flush=True,
            )
        cluster.close()
        for containers in (False, True):
            agent, keepers = supervision_cpu(
                root / f"cpu-{containers}", args.instances, args.seconds, containers
            )
            kind = "container" if containers else "process"
            print(
                f"agent CPU per supervised {kind:9s}: {agent * 1000:5.2f} ms/s"
                + (f", its keeper {keepers * 1000:5.2f} ms/s" if containers else ""),
                flush=True,
            )
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
