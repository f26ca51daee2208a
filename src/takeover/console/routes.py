"""The web console at /ui: server-rendered pages over the same services and authorization as the API.

Every page is built from the API's own objects (NodeOut, InstanceOut, FailoverOut) for the
cookie's principal, so a user sees exactly what the API shows that user. Pages poll themselves
with htmx (``#live`` every two seconds); actions are forms that htmx posts, each checked for
its CSRF value and origin, answered with a message in ``#flash``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import timedelta
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape

from takeover.api.deps import ControllersDep, ServicesDep
from takeover.api.errors import status_of
from takeover.api.failover_schemas import FailoverOut
from takeover.api.schemas import InstanceOut, NodeOut, TokenOut
from takeover.console import charts, views
from takeover.console.session import (
    COOKIE,
    CSRF_FIELD,
    CSRF_HEADER,
    check_csrf,
    check_origin,
    console_principal,
    csrf_value,
    is_secure,
)
from takeover.control.leadership import LEASE_NAME
from takeover.control.scope import owner_scope
from takeover.control.services import Services
from takeover.domain.errors import Forbidden, InvalidInput, TakeoverError
from takeover.domain.failover import FailoverReason
from takeover.domain.models import Instance, NodeStatus, Principal, Role

PAGE_SIZE = 100
SCORE_SPAN = timedelta(hours=1)
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_here = Path(str(files("takeover.console")))
_env = Environment(
    loader=FileSystemLoader(_here / "templates"), autoescape=select_autoescape(), trim_blocks=True
)
_env.filters.update(short=views.short, millis=views.millis, taken=views.snapshot_taken)
templates = Jinja2Templates(env=_env)


class ConsoleRoute(APIRoute):
    """A refused request is a page saying why, with the API's status code, never JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page(request: Request) -> Response:
            try:
                return await handler(request)
            except TakeoverError as error:
                return _error(request, error.message, status_of(error))
            except RequestValidationError as error:
                return _error(request, "; ".join(_field(e) for e in error.errors()), 422)

        return page


def _field(error: Any) -> str:
    where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("path", "query"))
    return f"{where}: {error.get('msg', 'invalid')}"


def _error(request: Request, message: str, status: int) -> Response:
    return templates.TemplateResponse(
        request, "error.html", {"message": message, "status": status}, status_code=status, headers=HEADERS
    )


router = APIRouter(
    prefix="/ui", include_in_schema=False, default_response_class=HTMLResponse, route_class=ConsoleRoute
)


class Session:
    """The logged-in principal and the CSRF value its pages carry."""

    def __init__(self, principal: Principal, token: str) -> None:
        self.principal = principal
        self.csrf = csrf_value(token)
        self.token = token


def _session(request: Request, services: ServicesDep) -> Session:
    token = request.cookies.get(COOKIE)
    try:
        return Session(console_principal(services, token), token or "")
    except TakeoverError as error:
        if request.headers.get("hx-request"):
            raise HTTPException(401, error.message, headers={"HX-Redirect": "/ui/login"}) from error
        raise HTTPException(303, error.message, headers={"Location": "/ui/login"}) from error


SessionDep = Annotated[Session, Depends(_session)]


def _page(request: Request, session: Session, name: str, services: Services, **context: Any) -> Response:
    context.update(
        who=session.principal,
        csrf=session.csrf,
        now=services.clock.now(),
        age=views.age,
        problems=services.status().problems,
    )
    return templates.TemplateResponse(request, name, context, headers=HEADERS)


async def _fields(request: Request) -> dict[str, str]:
    """The posted form from this site (another origin is refused), NUL bytes refused."""
    check_origin(request)
    fields = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
    if any("\x00" in v for v in fields.values()):
        raise InvalidInput("a form field holds a NUL character")
    return fields


async def _form(request: Request, session: Session) -> dict[str, str]:
    """The posted form of a logged-in page, after its CSRF check."""
    fields = await _fields(request)
    check_csrf(session.token, request.headers.get(CSRF_HEADER) or fields.get(CSRF_FIELD))
    return fields


async def _act(
    request: Request, session: Session, action: Callable[[dict[str, str]], str | views.Said]
) -> Response:
    """Run one action; the answer is a message for ``#flash`` (htmx) or a redirect back."""
    try:
        answer = action(await _form(request, session))
        said, status = answer if isinstance(answer, views.Said) else views.Said(answer), 200
    except TakeoverError as error:
        said, status = views.Said(error.message, "error"), status_of(error)
    if not request.headers.get("hx-request"):
        back = request.headers.get("referer", "/ui")
        return RedirectResponse(back if back.startswith(str(request.base_url)) else "/ui", 303)
    return templates.TemplateResponse(
        request,
        "_flash.html",
        {"message": said.message, "tone": said.tone},
        status_code=status,
        headers=HEADERS,
    )


def _admin(session: Session) -> None:
    if not session.principal.is_admin:
        raise Forbidden("admin token required")


# login --------------------------------------------------------------------------------------
@router.get("/login")
def login_page(request: Request) -> Response:
    return templates.TemplateResponse(request, "login.html", {"error": None}, headers=HEADERS)


@router.post("/login")
async def login(request: Request, services: ServicesDep) -> Response:
    try:
        token = (await _fields(request)).get("token", "").strip()
        console_principal(services, token)
    except TakeoverError as failure:
        return templates.TemplateResponse(
            request,
            "login.html",
            {"error": failure.message},
            status_code=status_of(failure),
            headers=HEADERS,
        )
    response = RedirectResponse("/ui", 303)
    response.set_cookie(
        COOKIE, token, httponly=True, samesite="strict", secure=is_secure(request), path="/ui"
    )
    return response


@router.post("/logout")
async def logout(request: Request, session: SessionDep) -> Response:
    await _form(request, session)
    response = RedirectResponse("/ui/login", 303)
    response.delete_cookie(COOKIE, path="/ui")
    return response


# pages --------------------------------------------------------------------------------------
@router.get("")
def pool(
    request: Request, services: ServicesDep, session: SessionDep, page: Annotated[int, Query(ge=1)] = 1
) -> Response:
    nodes = sorted(services.list_nodes(session.principal, None, None), key=lambda n: (n.region, n.name))
    counts = views.status_counts([(n.region, n.status.value) for n in nodes])
    rows = views.Page.of(nodes, page, PAGE_SIZE).map(lambda n: NodeOut.of(n, services.heard(n)))
    return _page(
        request, session, "pool.html", services, nodes=rows, counts=counts, statuses=list(NodeStatus)
    )


@router.get("/nodes/{node_id}")
def node_page(request: Request, node_id: UUID, services: ServicesDep, session: SessionDep) -> Response:
    node = services.get_node(session.principal, node_id)
    now = services.clock.now()
    line = charts.timeline(services.store.scores.history(node_id, now - SCORE_SPAN), now, SCORE_SPAN)
    here = services.store.instances.find(owner_scope(session.principal), node_id=node_id)
    placed = [InstanceOut.of(i) for i in here]
    out = NodeOut.of(node, services.heard(node))
    return _page(request, session, "node.html", services, node=out, line=line, instances=placed)


@router.get("/instances")
def instances_page(
    request: Request, services: ServicesDep, session: SessionDep, page: Annotated[int, Query(ge=1)] = 1
) -> Response:
    def fetch(offset: int, limit: int) -> tuple[list[Instance], int]:
        return services.instance_page(session.principal, offset, limit)

    rows = views.Page.read(fetch, page, PAGE_SIZE).map(
        lambda i: InstanceOut.of(i, services.routes.address_of(i))
    )
    return _page(
        request, session, "instances.html", services, instances=rows, nodes=_node_names(services, session)
    )


@router.get("/instances/{instance_id}")
def instance_page(
    request: Request, instance_id: UUID, services: ServicesDep, session: SessionDep
) -> Response:
    instance = services.get_instance(session.principal, instance_id)
    readiness = services.orchestrator.readiness(session.principal, instance_id)
    history = services.list_failovers(session.principal, instance_id, None)[:20]
    return _page(
        request,
        session,
        "instance.html",
        services,
        instance=InstanceOut.of(instance, services.routes.address_of(instance)),
        readiness=readiness,
        failovers=[FailoverOut.of(f) for f in history],
        nodes=_node_names(services, session),
        names=views.Names({str(instance.id): instance.name}),
    )


@router.get("/failovers")
def failovers_page(
    request: Request, services: ServicesDep, session: SessionDep, page: Annotated[int, Query(ge=1)] = 1
) -> Response:
    found = services.list_failovers(session.principal, None, None)
    done = [f for f in found if f.timings.get("total_ms") is not None][:50]
    durations = charts.bars([(views.short(f.id), f.timings["total_ms"]) for f in reversed(done)])
    rows = views.Page.of(found, page, PAGE_SIZE).map(FailoverOut.of)
    names = services.store.instances.names({f.instance_id for f in rows.rows}, owner_scope(session.principal))
    return _page(
        request,
        session,
        "failovers.html",
        services,
        failovers=rows,
        durations=durations,
        nodes=_node_names(services, session),
        names=views.Names({str(k): v for k, v in names.items()}),
    )


@router.get("/failovers/{failover_id}")
def failover_page(
    request: Request, failover_id: UUID, services: ServicesDep, session: SessionDep
) -> Response:
    failover = FailoverOut.of(services.get_failover(session.principal, failover_id))
    instance = services.get_instance(session.principal, failover.instance_id)
    return _page(
        request,
        session,
        "failover.html",
        services,
        failover=failover,
        instance=instance,
        nodes=_node_names(services, session),
    )


@router.get("/system")
def system_page(
    request: Request, services: ServicesDep, controllers: ControllersDep, session: SessionDep
) -> Response:
    admin = session.principal.is_admin
    tokens = (
        [TokenOut.model_validate(t, from_attributes=True) for t in services.store.tokens.find()]
        if admin
        else []
    )
    people = [t for t in tokens if t.role != Role.NODE.value]  # a node's token goes with its node
    return _page(
        request,
        session,
        "system.html",
        services,
        lease=services.store.coordinator.current(LEASE_NAME),
        answered_by=controllers.leadership.holder if controllers is not None else None,
        groups=services.store.region_groups.find(),
        paused=services.store.pool.paused() if admin else [],
        tokens=people,
        node_tokens=sum(1 for t in tokens if t.role == Role.NODE.value and t.revoked_at is None),
    )


def _node_names(services: Services, session: Session) -> views.Names:
    return views.Names({str(n.id): n.name for n in services.list_nodes(session.principal, None, None)})


# actions ------------------------------------------------------------------------------------
@router.post("/nodes/{node_id}/status")
async def set_node_status(
    request: Request, node_id: UUID, services: ServicesDep, session: SessionDep
) -> Response:
    def act(form: dict[str, str]) -> str:
        _admin(session)
        try:
            status = NodeStatus(form.get("status", ""))
        except ValueError:
            raise InvalidInput(f"unknown node status {form.get('status')!r}", field="status") from None
        node = services.update_node(node_id, {"status": status})
        return f"{node.name} is now {node.status.value}"

    return await _act(request, session, act)


@router.post("/instances/{instance_id}/failover")
async def fail_over(
    request: Request, instance_id: UUID, services: ServicesDep, session: SessionDep
) -> Response:
    def act(_: dict[str, str]) -> str:
        failover = services.start_failover(session.principal, instance_id, FailoverReason.MANUAL, None)
        return f"failover {views.short(failover.id)} started"

    return await _act(request, session, act)


@router.post("/instances/{instance_id}/test")
async def dry_run(
    request: Request, instance_id: UUID, services: ServicesDep, session: SessionDep
) -> Response:
    def act(_: dict[str, str]) -> str | views.Said:
        plan = services.orchestrator.dry_run(session.principal, instance_id, None)
        verdict = "would succeed" if plan["would_succeed"] else "would not succeed"
        advice = f": {plan['recommended_action']}" if plan.get("recommended_action") else ""
        said = f"dry run: would try {plan['would_try'] or 'nothing'}; {verdict}{advice}"
        return said if plan["would_succeed"] else views.Said(said, "warn")  # answered, but not good news

    return await _act(request, session, act)


@router.post("/tokens/{token_id}/revoke")
async def revoke(request: Request, token_id: UUID, services: ServicesDep, session: SessionDep) -> Response:
    def act(_: dict[str, str]) -> str:
        _admin(session)
        services.store.tokens.revoke(token_id, services.clock.now())
        return f"token {views.short(token_id)} revoked"

    return await _act(request, session, act)


def install_console(app: FastAPI) -> None:
    app.include_router(router)
    app.add_api_route("/", lambda: RedirectResponse("/ui"), include_in_schema=False)
    app.mount("/ui/static", StaticFiles(directory=_here / "static"), name="console-static")


__all__ = ["install_console"]
