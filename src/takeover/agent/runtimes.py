"""What a node runs its workloads with, from its settings: a process runtime always, a container
runtime unless NODE_CONTAINER_RUNTIME=none, and the optional watchdog; each workload's keeper
reads the node's fence file."""

from __future__ import annotations

import os
from pathlib import Path

from takeover.agent.containers import ContainerRuntime
from takeover.agent.processes import ProcessRuntime, RunAs
from takeover.agent.registration import AgentError
from takeover.agent.runtime import LaunchError, Runtime
from takeover.agent.settings import AgentSettings
from takeover.agent.watchdog import Watchdog

FENCE_GRACE = 1.0  # SIGTERM to SIGKILL when fencing, until a reply gives the control plane's


def node_runtimes(settings: AgentSettings, fence_path: Path) -> tuple[ProcessRuntime, Runtime | None]:
    grace = min(settings.stop_grace, FENCE_GRACE)
    try:
        run_as = RunAs.parse(settings.run_as) if settings.run_as else None
    except LaunchError as exc:
        raise AgentError(str(exc)) from None
    processes = ProcessRuntime(run_as, settings.passed_env, fence_path, grace)
    if settings.container_runtime == "none":
        return processes, None
    containers = ContainerRuntime(settings.container_runtime, settings.container_options, fence_path, grace)
    return processes, containers


def node_watchdog(settings: AgentSettings) -> Watchdog | None:
    if settings.watchdog is None:
        return None
    if not os.access(settings.watchdog, os.W_OK):
        raise AgentError(f"NODE_WATCHDOG: {settings.watchdog} is not a device this agent can write to")
    return Watchdog(settings.watchdog, settings.watchdog_timeout)
