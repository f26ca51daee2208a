"""What the edge refuses before any model sees it: NUL characters, lone surrogates, NaN/Infinity.

Python's json module accepts all three, PostgreSQL refuses NUL and unpaired surrogates in text,
and a 422 that echoes such input cannot itself be encoded (a 500). So every JSON body is parsed
here strictly, and a query string or path holding a NUL is answered 422 before routing. The
common body has none of the escapes that can produce them, so it costs five substring scans.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

_SUSPECT = (b"\\u0000", b"\\ud", b"\\uD", b"NaN", b"Infinity")
ORCHESTRATOR_PREFIX = "/api/v1/failover/"  # document 002's endpoints answer invalid input with 400


Loc = list[str | int]


class BadText(json.JSONDecodeError):
    """A JSON body that parses but holds text or numbers the API refuses; ``loc`` names the field."""

    def __init__(self, loc: Loc, problem: str, doc: str) -> None:
        super().__init__(f"{'.'.join(map(str, loc))}: {problem}", doc, 0)
        self.loc, self.problem = loc, problem


class _NonFinite(float):
    """A NaN or Infinity literal, kept recognisable until the walk names its field."""


def strict_loads(body: bytes) -> Any:
    """``json.loads``, refusing NUL, lone surrogates and non-finite numbers with the field's path."""
    if not any(s in body for s in _SUSPECT):
        return json.loads(body)
    data = json.loads(body, parse_constant=lambda name: _NonFinite(float(name)))
    problem = _first_problem(data, ["body"])
    if problem is not None:
        raise BadText(*problem, doc=body.decode("utf-8", "replace"))
    return data


def _first_problem(value: Any, loc: Loc) -> tuple[Loc, str] | None:
    if isinstance(value, str):
        return _text_problem(value, loc)
    if isinstance(value, float) and (isinstance(value, _NonFinite) or not math.isfinite(value)):
        return loc, "NaN and Infinity are not numbers (JSON has no such values)"
    if isinstance(value, list):
        for index, item in enumerate(value):
            if found := _first_problem(item, [*loc, index]):
                return found
    if isinstance(value, dict):
        for key, item in value.items():
            if found := _text_problem(key, [*loc, "(a key)"]) or _first_problem(item, [*loc, key]):
                return found
    return None


def _text_problem(text: str, loc: Loc) -> tuple[Loc, str] | None:
    if "\x00" in text:
        return loc, "NUL characters (\\u0000) are not allowed in text"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return loc, "a lone surrogate (\\ud800-\\udfff without its pair) is not valid Unicode"
    return None


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = strict_loads(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    """Every router's route class: FastAPI reads the body through ``StrictJSONRequest.json``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict


class RefuseNul:
    """Pure ASGI middleware: a NUL in the path or a query parameter is a 422 naming it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            where = _nul_in(scope)
            if where is not None:
                detail = [{"type": "nul_character", "loc": where, "msg": "NUL characters are not allowed"}]
                status = 400 if scope["path"].startswith(ORCHESTRATOR_PREFIX) else 422
                await JSONResponse({"detail": detail}, status_code=status)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _nul_in(scope: Scope) -> list[str] | None:
    if "\x00" in scope["path"]:
        return ["path"]
    query: bytes = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if "\x00" in name or "\x00" in value:
                return ["query", name.replace("\x00", "\\u0000")]
    return None


def validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """FastAPI's error list without the offending input (it may be what cannot be encoded)."""
    if isinstance(exc.__cause__, BadText):  # FastAPI wraps our JSONDecodeError; its field is ours
        return [{"type": "invalid_text", "loc": exc.__cause__.loc, "msg": exc.__cause__.problem}]
    errors = []
    for error in exc.errors():
        item: dict[str, Any] = {"type": error["type"], "loc": list(error["loc"]), "msg": error["msg"]}
        if error["type"] == "json_invalid" and "error" in error.get("ctx", {}):
            item["msg"] = f"{error['msg']}: {error['ctx']['error']}"
        elif error.get("ctx"):
            item["ctx"] = _encodable(error["ctx"])
        errors.append(item)
    return errors


def _encodable(ctx: dict[str, Any]) -> dict[str, Any] | str:
    try:
        encoded = jsonable_encoder(ctx)
        json.dumps(encoded, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError):
        return "(not shown: it cannot be encoded)"
    return encoded  # type: ignore[no-any-return]
