"""Join tokens: how a machine joins the pool without an admin token (Swarm's join-token,
kubeadm's bootstrap tokens). An admin makes one; the machine's agent trades it at
``POST /nodes/join`` for its own node token."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from fastapi import APIRouter, status

from takeover.api.deps import AdminDep, ServicesDep
from takeover.api.inputs import StrictJSONRoute
from takeover.api.schemas import JoinTokenCreate, JoinTokenCreated, JoinTokenOut

router = APIRouter(prefix="/join-tokens", tags=["nodes"], route_class=StrictJSONRoute)


@router.post("", status_code=status.HTTP_201_CREATED)
def create_join_token(body: JoinTokenCreate, services: ServicesDep, who: AdminDep) -> JoinTokenCreated:
    token, raw = services.create_join_token(
        who, body.region, timedelta(seconds=body.ttl_seconds), body.max_uses
    )
    return JoinTokenCreated(**JoinTokenOut.of(token, services.clock.now()).model_dump(), token=raw)


@router.get("")
def list_join_tokens(services: ServicesDep, _: AdminDep, ended: bool = False) -> list[JoinTokenOut]:
    """The join tokens that still let machines in (``ended``: expired, used up and revoked too)."""
    now = services.clock.now()
    return [JoinTokenOut.of(t, now) for t in services.join_tokens(include_ended=ended)]


@router.delete("/{token_id}")
def revoke_join_token(token_id: UUID, services: ServicesDep, _: AdminDep) -> JoinTokenOut:
    return JoinTokenOut.of(services.revoke_join_token(token_id), services.clock.now())
