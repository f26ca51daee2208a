"""Containers an earlier life of this agent left running (it was killed or restarted).

The first reply settles them: one still running at the epoch the control plane wants here is
adopted, never started a second time; everything else is removed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import structlog

from takeover.agent.localstate import LocalState
from takeover.agent.runner import Runner
from takeover.agent.runtime import LaunchError, Leftover, Runtime
from takeover.api.wire import DesiredInstance

log = structlog.get_logger("takeover.agent")


def find_leftovers(runtime: Runtime | None, node: str) -> list[Leftover]:
    if runtime is None:
        return []
    try:
        found = runtime.leftovers(node)
    except LaunchError as exc:
        log.warning("cannot list containers from an earlier life", error=str(exc))
        return []
    if found:
        log.info("found containers from an earlier life", count=len(found))
    return found


def settle_leftovers(
    found: list[Leftover],
    wanted: dict[str, DesiredInstance],
    runtime: Runtime | None,
    local: LocalState,
    volume_root: Path | None,
    make_runner: Callable[[DesiredInstance, int], Runner],
) -> list[Runner]:
    """The runners adopted; every other leftover is removed."""
    adopted = []
    for left in found:
        item = wanted.get(left.instance_id)
        port = int(local.read(left.instance_id).get("port") or 0)
        if runtime is None or item is None or item.epoch != left.epoch or not left.running or not port:
            log.info("removing a container from an earlier life", container=left.name)
            if runtime is not None:
                runtime.remove(left)
            continue
        runner = make_runner(item, port)
        try:  # present (it runs): a local look-up, and what a restart after a crash runs
            runner.image_ref, runner.image_digest = runtime.resolve(
                runner.spec.image or "", runner.spec.image_digest
            )
        except (LaunchError, ValueError) as exc:
            log.warning("cannot adopt; removing", container=left.name, error=str(exc))
            runtime.remove(left)
            continue
        if item.volume_id is not None and volume_root is not None:
            runner.workspace, runner.on_volume = (volume_root / str(item.volume_id)).resolve(), True
        runner.adopt(runtime.adopt(left, runner.log_path))
        adopted.append(runner)
        log.info("adopted a container from an earlier life", container=left.name, epoch=left.epoch)
    return adopted
