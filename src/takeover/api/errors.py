"""Domain errors to HTTP, in one place."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from takeover.api.inputs import ORCHESTRATOR_PREFIX, validation_errors
from takeover.domain import errors

STATUS: list[tuple[type[errors.TakeoverError], int]] = [
    (errors.Unsatisfiable, 422),
    (errors.InvalidInput, 400),
    (errors.Unauthenticated, 401),
    (errors.Forbidden, 403),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.NoCapacity, 503),
    (errors.StoreUnavailable, 503),
    (errors.ProviderError, 502),
    (errors.FencedOut, 409),
]


def status_of(error: errors.TakeoverError) -> int:
    """The HTTP status a domain error answers with (the API's and the console's)."""
    return next((code for kind, code in STATUS if isinstance(error, kind)), 500)


def install_error_handlers(app: FastAPI) -> None:
    async def on_takeover_error(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, errors.TakeoverError)
        status = status_of(error)
        body: dict[str, Any] = {"detail": error.message}
        if error.field:
            body["field"] = error.field
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if status == 503:
            headers = {"Retry-After": "5"}
        return JSONResponse(body, status_code=status, headers=headers)

    async def on_invalid_request(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        # Document 002's error table answers invalid parameters with 400; the rest of the API
        # keeps FastAPI's 422. The body is the same list naming each field.
        status = 400 if request.url.path.startswith(ORCHESTRATOR_PREFIX) else 422
        return JSONResponse({"detail": validation_errors(error)}, status_code=status)

    app.add_exception_handler(errors.TakeoverError, on_takeover_error)
    app.add_exception_handler(RequestValidationError, on_invalid_request)


class ErrorOut(BaseModel):
    detail: str | list[dict[str, Any]] = Field(description="why; for invalid fields, a list naming each")
    field: str | None = None


# Documented on every operation, so clients (and schemathesis) know each one can answer so.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": text}
    for code, text in [
        (400, "invalid parameters (document 002's endpoints)"),
        (401, "missing, unknown or revoked bearer token"),
        (403, "the token's role may not do this"),
        (404, "not found, or not yours"),
        (409, "conflicts with the current state (a failover in progress, a node not empty)"),
        (413, "request body too large"),
        (429, "rate limit: retry after the Retry-After header's seconds"),
        (503, "no capacity, or the store is unreachable: retry"),
    ]
}
