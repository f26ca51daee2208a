"""Document 002's orchestrator API under /failover (machine_id is the instance id)."""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from takeover.api.deps import MachineIdDep, PersonDep, ServicesDep, VolumeIdDep
from takeover.api.failover_schemas import (
    EXECUTE_NOT_ACTED_ON,
    VOLUME_FAILOVER_NOT_ACTED_ON,
    ExecuteIn,
    StrategyParam,
    VolumeFailoverIn,
    not_acted_on,
)
from takeover.api.inputs import StrictJSONRoute
from takeover.api.schemas import VolumeCreate, VolumeOut
from takeover.control.services import Services
from takeover.domain.failover import Failover

router = APIRouter(prefix="/failover", tags=["orchestrator"], route_class=StrictJSONRoute)


async def _finished(services: Services, failover: Failover) -> Failover:
    """Wait for the leader's executor to finish it, up to the orchestrator's execute timeout."""
    deadline = time.monotonic() + services.orchestrator.execute_timeout
    while failover.is_open and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        failover = await asyncio.to_thread(services.store.failovers.get, failover.id)
    return failover


@router.post("/execute")
async def execute(body: ExecuteIn, services: ServicesDep, who: PersonDep) -> dict[str, Any]:
    """Fail the instance over now and answer when it is done (success) or has failed."""
    orchestrator = services.orchestrator
    machine_id = services.instance_ref(who, body.machine_id)
    failover = await asyncio.to_thread(orchestrator.start, who, machine_id, body.force_strategy)
    done = await _finished(services, failover)
    response = await asyncio.to_thread(orchestrator.response, done)
    if done.is_open:
        response["error"] = (
            f"still running after {orchestrator.execute_timeout:.0f} s; see GET /api/v1/failovers/{done.id}"
        )
    return {**response, "not_acted_on": not_acted_on(body, EXECUTE_NOT_ACTED_ON)}


@router.get("/readiness/{machine_id}")
def readiness(machine_id: MachineIdDep, services: ServicesDep, who: PersonDep) -> dict[str, Any]:
    return services.orchestrator.readiness(who, machine_id)


@router.get("/status/{machine_id}")
def failover_status(machine_id: MachineIdDep, services: ServicesDep, who: PersonDep) -> dict[str, Any]:
    return services.orchestrator.status(who, machine_id)


@router.post("/test/{machine_id}")
async def trial_failover(
    machine_id: MachineIdDep,
    services: ServicesDep,
    who: PersonDep,
    strategy: Annotated[StrategyParam | None, Query(description="strategy to test")] = None,
    dry_run: bool = True,
) -> dict[str, Any]:
    """dry_run=true (the default) computes the plan and writes nothing; false runs it for real."""
    orchestrator = services.orchestrator
    if dry_run:
        return await asyncio.to_thread(orchestrator.dry_run, who, machine_id, strategy)
    failover = await asyncio.to_thread(orchestrator.start, who, machine_id, strategy)
    done = await _finished(services, failover)
    return {"dry_run": False, **(await asyncio.to_thread(orchestrator.response, done))}


@router.get("/strategies")
def strategies(services: ServicesDep, _: PersonDep) -> dict[str, Any]:
    return {
        "strategies": [
            {
                "id": s.id,
                "name": s.name,
                "description": s.description,
                "recovery_time": s.recovery_time,
                "cost": s.cost,
                "requirements": list(s.requirements),
                "steps": list(s.steps),
            }
            for s in services.orchestrator.strategies()
        ]
    }


@router.post("/regional-volume/create")
def create_volume(body: VolumeCreate, services: ServicesDep, who: PersonDep) -> dict[str, Any]:
    name = body.name or f"volume-{body.region}-{secrets.token_hex(3)}".lower()
    volume = services.orchestrator.create_volume(who, name, body.region, body.size_gb)
    return {
        "success": True,
        "volume_id": volume.id,
        "number": volume.number,
        "name": volume.name,
        "region": volume.region,
        "size_gb": volume.size_gb,
    }


@router.post("/regional-volume/failover")
async def volume_failover(body: VolumeFailoverIn, services: ServicesDep, who: PersonDep) -> dict[str, Any]:
    orchestrator = services.orchestrator
    started = time.monotonic()
    volume, failover = await asyncio.to_thread(
        orchestrator.volume_failover,
        who,
        services.volume_ref(who, body.volume_id),
        body.preferred_gpus,
        body.max_price,
    )
    done = await _finished(services, failover)
    result = await asyncio.to_thread(orchestrator.response, done)
    return {
        "success": result["success"],
        "volume_id": volume.id,
        "old_instance_id": volume.attached_to,
        "new_instance_id": volume.attached_to,  # the instance keeps its id; its runner is new
        "failover_id": done.id,
        "new_node_id": result["new_node_id"],
        "new_gpu_name": result["new_gpu_name"],
        "new_gpu_id": result["new_gpu_id"],
        "region": volume.region,
        "failover_time_seconds": round(time.monotonic() - started, 3),
        "message": "Failover completed successfully" if result["success"] else (result["error"] or "failed"),
        "ssh_host": result["new_ssh_host"],
        "ssh_port": result["new_ssh_port"],
        "stable_address": result["stable_address"],
        "not_acted_on": not_acted_on(body, VOLUME_FAILOVER_NOT_ACTED_ON),
    }


@router.get("/regional-volume/list")
def list_volumes(services: ServicesDep, who: PersonDep) -> dict[str, Any]:
    volumes = [VolumeOut.of(v) for v in services.orchestrator.volumes(who)]
    return {"volumes": volumes, "count": len(volumes)}


@router.get("/regional-volume/search/{region}")
def search(
    region: str,
    services: ServicesDep,
    _: PersonDep,
    max_price: Annotated[float | None, Query(ge=0, allow_inf_nan=False)] = None,
    gpu_name: Annotated[str | None, Query(max_length=100)] = None,
    use_spot: bool = False,
) -> dict[str, Any]:
    """The best offer first (document 002's answer), then all of them: the pool's nodes
    (``source`` "pool") and what the marketplace would rent (``source`` its name)."""
    gpus = (gpu_name,) if gpu_name else ()
    offers = services.orchestrator.search(region, max_price, gpus, use_spot)
    if not offers:
        return {"found": False, "offer": None, "offers": [], "count": 0}
    return {
        "found": True,
        "offer": asdict(offers[0]),
        "offers": [asdict(o) for o in offers],
        "count": len(offers),
    }


@router.get("/regional-volume/{volume_id}")
def get_volume(volume_id: VolumeIdDep, services: ServicesDep, who: PersonDep) -> VolumeOut:
    return VolumeOut.of(services.orchestrator.volume(who, volume_id))


@router.delete("/regional-volume/{volume_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_volume(volume_id: VolumeIdDep, services: ServicesDep, who: PersonDep) -> Response:
    services.orchestrator.delete_volume(who, volume_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
