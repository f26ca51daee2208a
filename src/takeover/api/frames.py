"""What agents and the control plane exchange, on a stream or as one request per heartbeat.

Both paths decode a heartbeat into the same domain value and answer with the same reply, so an
agent on either gets the same desired state and the same fencing timings.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from takeover.api.specs import SpecOut
from takeover.api.wire import DesiredInstance, HeartbeatIn, HeartbeatOut, ReleaseInstance, WitnessOut
from takeover.domain.heartbeat import Heartbeat, Runs
from takeover.domain.models import Instance, Witnessing

if TYPE_CHECKING:  # the agent imports this module: none of the control plane's code comes with it
    from takeover.control.values import AgentTimings
    from takeover.store import HeartbeatResult


class HeartbeatFrame(HeartbeatIn):
    """A heartbeat on a stream: ``seq`` pairs it with its acknowledgement."""

    type: Literal["heartbeat"]
    seq: int = Field(ge=0, le=2**53)
    node_id: UUID = Field(description="the stream's own node; a frame for another closes the stream")


class StreamMessage(BaseModel):
    """Downstream: ``ack`` answers heartbeat ``seq`` once its group commit committed; ``desired`` is
    the node's state pushed as soon as it changed (it acknowledges nothing: fencing ignores it)."""

    type: Literal["ack", "desired"]
    seq: int | None = None
    reply: HeartbeatOut


def heartbeat_of(node_id: UUID, body: HeartbeatIn) -> Heartbeat:
    return Heartbeat(
        node_id,
        body.cpu_load,
        body.memory_load,
        body.avg_latency_ms,
        tuple(r.to_report() for r in body.instances),
        tuple((s.id, s.snapshot) for s in body.standbys),
        tuple(g.to_gpu() for g in sorted(body.gpus, key=lambda g: g.index)),
        body.fenced,
        Witnessing(
            body.witness_addr,
            body.stamp_held,
            body.held_for,
            tuple(body.witnesses) if body.witnesses is not None else None,
        ),
        None if body.containers is None else Runs(body.containers, body.image),
    )


def heartbeat_reply(result: HeartbeatResult, timings: AgentTimings, now: datetime) -> HeartbeatOut:
    node = result.node
    return HeartbeatOut(
        node_id=node.id,
        health_score=node.health_score,
        status=node.status,
        desired=[_desired(i) for i in result.desired.run],
        release=[ReleaseInstance(id=i.id, epoch=i.epoch) for i in result.desired.release],
        heartbeat_interval=timings.heartbeat_interval,
        fence_after=timings.fence_after,
        standby=[_desired(i) for i in result.desired.standby],
        sync_interval=timings.sync_interval,
        fence_grace=timings.fence_grace,
        server_time=now,
        stamp=node.last_heartbeat_at,
        witnesses=[WitnessOut(id=i, addr=a) for i, a in result.witnesses],
        witness_lag=timings.witness_lag,
        witness_lease=timings.witness_lease,
    )


def _desired(i: Instance) -> DesiredInstance:
    return DesiredInstance(
        id=i.id,
        name=i.name,
        epoch=i.epoch,
        spec=SpecOut.of(i.spec),
        snapshot_requested_at=i.snapshot_requested_at,
        volume_id=i.volume_id,
        recovery_point=i.recovery_point,
        start_empty=i.start_empty,
        gpu_indices=list(i.gpu_indices),
    )
