"""Capacity: what the pool and the marketplace offer, and the machines rented from it."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from takeover.api.deps import AdminDep, PersonDep, ServicesDep
from takeover.api.fields import Region
from takeover.api.inputs import StrictJSONRoute
from takeover.control.values import RentedMachine

router = APIRouter(prefix="/provider", tags=["provider"], route_class=StrictJSONRoute)


class OfferOut(BaseModel):
    offer_id: str
    name: str
    region: str
    gpu_name: str | None
    num_gpus: int
    price_per_hour: float | None
    reliability: float
    free_slots: int
    source: str = Field(description='"pool" (a node of the pool) or the marketplace it would be rented from')
    spot: bool


class MachineOut(BaseModel):
    id: UUID = Field(description="the rental's id")
    provider: str
    state: str
    region: str
    offer_id: str | None
    gpu_name: str | None
    num_gpus: int
    price_per_hour: float | None
    cost_so_far: float = Field(description="dollars, its price for the time it has been held")
    machine_id: str | None = Field(description="the marketplace's id of the machine")
    ssh_host: str | None
    ssh_port: int | None
    node_id: UUID | None
    node_name: str | None
    instances: list[str] = Field(description="the instances it runs or keeps a standby of")
    failover_id: UUID | None = Field(description="the failover it was rented for")
    created_at: datetime
    requested_at: datetime | None
    rented_at: datetime | None
    joined_at: datetime | None
    ended_at: datetime | None
    error: str | None

    @classmethod
    def of(cls, held: RentedMachine, now: datetime) -> MachineOut:
        r = held.rental
        data = {f: getattr(r, f) for f in cls.model_fields if hasattr(r, f)}
        data.update(
            state=r.state.value,
            cost_so_far=round(r.cost(now), 4),
            node_name=held.node_name,
            instances=held.instances,
        )
        return cls.model_validate(data)


@router.get("/offers")
def offers(
    services: ServicesDep,
    _: PersonDep,
    region: Annotated[Region, Query(description="a region of the pool")],
    gpu: Annotated[list[Annotated[str, Query(max_length=100)]] | None, Query(max_length=20)] = None,
    max_price: Annotated[float | None, Query(ge=0, allow_inf_nan=False)] = None,
    spot: bool = False,
) -> dict[str, Any]:
    """The pool's nodes with room, then what the marketplace would rent, each cheapest first."""
    found = services.orchestrator.search(region, max_price, gpu or (), spot)
    return {"offers": [OfferOut(**asdict(o)) for o in found], "count": len(found)}


@router.get("/machines")
def machines(
    services: ServicesDep,
    _: AdminDep,
    ended: Annotated[bool, Query(description="include ended ones")] = False,
) -> list[MachineOut]:
    now = services.clock.now()
    return [MachineOut.of(m, now) for m in services.rented_machines(include_ended=ended)]


@router.post("/machines/{rental_id}/release")
async def release(rental_id: UUID, services: ServicesDep, _: AdminDep) -> MachineOut:
    """Give the machine back now; refused while it runs an instance (drain its node first)."""
    held = await asyncio.to_thread(services.release_machine, rental_id)
    return MachineOut.of(held, services.clock.now())
