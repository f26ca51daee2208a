"""Health, metrics, tokens, the mass-failure brake and the event log."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Query, Response, status
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from takeover.api.deps import AdminDep, ControllersDep, PersonDep, ServicesDep
from takeover.api.fields import Region
from takeover.api.inputs import StrictJSONRoute
from takeover.api.schemas import LeaderOut, StatusOut, TokenCreate, TokenCreated, TokenOut
from takeover.control.leadership import LEASE_NAME
from takeover.domain.models import Role

router = APIRouter(tags=["system"], route_class=StrictJSONRoute)


@router.get("/healthz")
def healthz(services: ServicesDep, response: Response) -> dict[str, str]:
    if not services.store.reachable():
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return {"status": "store unreachable"}
    return {"status": "ok"}


@router.get("/livez")
def livez() -> dict[str, str]:
    """The process answers: restart it only when this fails (nothing here touches the store)."""
    return {"status": "alive"}


@router.get("/readyz")
def readyz(services: ServicesDep, response: Response) -> dict[str, str]:
    """Send traffic here? No while draining after SIGTERM, without the store, or on a schema
    older than this release; load balancers check this one."""
    problem = "draining: shutting down" if services.is_draining() else services.store.not_ready()
    if problem is not None:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return {"status": "not ready", "reason": problem}
    return {"status": "ready"}


@router.get("/metrics")
def metrics(services: ServicesDep) -> Response:
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/v1/status")
def plane(services: ServicesDep, _: PersonDep) -> StatusOut:
    """Whether the pool shown can be trusted now: the store takes writes, a replica leads, and
    every online node was heard from within fence_after. It answers while the store is down."""
    return StatusOut.of(services.status())


@router.get("/api/v1/leader")
def leader(services: ServicesDep, controllers: ControllersDep, _: PersonDep) -> LeaderOut:
    """Which replica runs the controllers now; any replica answers, API-only ones too."""
    lease = services.store.coordinator.current(LEASE_NAME)
    mine = controllers.leadership.holder if controllers is not None else None
    if lease is None:
        return LeaderOut(holder=None, epoch=None, expires_at=None, current=False, answered_by=mine)
    return LeaderOut(
        holder=lease.holder,
        epoch=lease.epoch,
        expires_at=lease.expires_at,
        current=lease.expires_at > services.clock.now(),
        answered_by=mine,
    )


@router.post("/api/v1/tokens", status_code=status.HTTP_201_CREATED)
def create_token(body: TokenCreate, services: ServicesDep, _: AdminDep) -> TokenCreated:
    record, raw = services.create_token(Role(body.role), body.subject)
    return TokenCreated(
        id=record.id,
        role=record.role,
        subject=record.subject,
        created_at=record.created_at,
        revoked_at=None,
        token=raw,
    )


@router.get("/api/v1/tokens")
def list_tokens(services: ServicesDep, _: AdminDep) -> list[TokenOut]:
    return [
        TokenOut(id=t.id, role=t.role, subject=t.subject, created_at=t.created_at, revoked_at=t.revoked_at)
        for t in services.store.tokens.find()
    ]


@router.delete("/api/v1/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_token(token_id: UUID, services: ServicesDep, _: AdminDep) -> Response:
    services.store.tokens.revoke(token_id, services.clock.now())
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/api/v1/regions/paused")
def paused_regions(services: ServicesDep, _: AdminDep) -> list[dict[str, Any]]:
    return services.store.pool.paused()


@router.post("/api/v1/regions/{region}/resume", status_code=status.HTTP_204_NO_CONTENT)
def resume_region(region: Region, services: ServicesDep, _: AdminDep) -> Response:
    services.resume_region(region)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/api/v1/events")
def events(
    services: ServicesDep, _: AdminDep, limit: int = Query(100, ge=1, le=1000), kind: str | None = None
) -> list[dict[str, Any]]:
    return services.store.pool.events(limit, kind)
