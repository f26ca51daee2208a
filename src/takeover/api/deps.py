"""Typed dependencies: the services, the caller, and role checks."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from takeover.api.fields import Ref
from takeover.control.loop import ControlLoop
from takeover.control.services import Services
from takeover.domain.errors import Forbidden
from takeover.domain.models import Principal, Role

_bearer = HTTPBearer(auto_error=False)


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_controllers(request: Request) -> ControlLoop | None:
    loop: ControlLoop | None = request.app.state.controllers
    return loop


ServicesDep = Annotated[Services, Depends(get_services)]
ControllersDep = Annotated[ControlLoop | None, Depends(get_controllers)]


async def get_bearer(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str | None:
    return credentials.credentials if credentials else None


BearerDep = Annotated[str | None, Depends(get_bearer)]


def get_principal(services: ServicesDep, token: BearerDep) -> Principal:
    return services.authenticate(token)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def require_admin(who: PrincipalDep) -> Principal:
    if who.role is not Role.ADMIN:
        raise Forbidden("admin token required")
    return who


async def require_person(who: PrincipalDep) -> Principal:
    """Admins and users; node tokens may only heartbeat."""
    if who.role is Role.NODE:
        raise Forbidden("node tokens may only send heartbeats")
    return who


AdminDep = Annotated[Principal, Depends(require_admin)]
PersonDep = Annotated[Principal, Depends(require_person)]


# Path ids: a UUID, or the short number document 002's requests carry, resolved once here.
def _instance_id(instance_id: Ref, services: ServicesDep, who: PrincipalDep) -> UUID:
    return services.instance_ref(who, instance_id)


def _machine_id(machine_id: Ref, services: ServicesDep, who: PrincipalDep) -> UUID:
    return services.instance_ref(who, machine_id)


def _volume_id(volume_id: Ref, services: ServicesDep, who: PrincipalDep) -> UUID:
    return services.volume_ref(who, volume_id)


InstanceIdDep = Annotated[UUID, Depends(_instance_id)]
MachineIdDep = Annotated[UUID, Depends(_machine_id)]
VolumeIdDep = Annotated[UUID, Depends(_volume_id)]
