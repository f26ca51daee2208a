"""What a heartbeat reply asks of this node, and when a workspace is due for a snapshot:
decided from values only, so the rules are tested without processes (tests/unit/test_agent_plan.py).

A reply is acted on in one order: stop what is no longer desired here or whose epoch moved
(its successor owns the data), hand over what is released at the epoch running here (stop,
final snapshot, report stopped), resume a handover that was called off, and only then start
what is desired and not running: a node never runs two copies, not even for a moment.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass
from enum import StrEnum

from takeover.domain.models import InstanceState


class Act(StrEnum):
    STOP = "stop"
    HAND_OVER = "hand_over"
    RESUME = "resume"
    START = "start"


@dataclass(frozen=True, slots=True)
class Held:
    """A runner as the plan sees it."""

    epoch: int
    released: bool = False


@dataclass(frozen=True, slots=True)
class Action:
    act: Act
    instance_id: str


def plan(
    desired: Mapping[str, int], release: Mapping[str, int], running: Mapping[str, Held], busy: Set[str]
) -> list[Action]:
    """``desired``/``release``: instance id -> epoch; ``busy``: workspaces a job still uses."""
    actions: list[Action] = []
    for instance_id, held in running.items():
        if release.get(instance_id) == held.epoch:
            if not held.released:
                actions.append(Action(Act.HAND_OVER, instance_id))
        elif desired.get(instance_id) != held.epoch:
            actions.append(Action(Act.STOP, instance_id))
        elif held.released:
            actions.append(Action(Act.RESUME, instance_id))
    stopped = {a.instance_id for a in actions if a.act is Act.STOP}
    actions += [
        Action(Act.START, instance_id)
        for instance_id in desired
        if (instance_id not in running or instance_id in stopped) and instance_id not in busy
    ]
    return actions


class Snapshot(StrEnum):
    FINAL = "final"  # a handover's, retried until it is taken
    PERIODIC = "periodic"  # every SNAPSHOT_INTERVAL, or at once for an on-demand request


def snapshot_due(
    now: float,
    state: InstanceState,
    released: bool,
    next_at: float | None,
    requested: str | None,
    served: str | None,
) -> Snapshot | None:
    """Whether a runner's workspace needs a snapshot now (``next_at`` None: never taken, so now)."""
    due = next_at is None or now >= next_at
    if released and state is InstanceState.STOPPING:
        return Snapshot.FINAL if due else None
    if state is InstanceState.RUNNING and (due or requested != served):
        return Snapshot.PERIODIC
    return None
