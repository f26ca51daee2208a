"""Domain errors to HTTP, in one place."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from takeover.domain import errors

STATUS: list[tuple[type[errors.TakeoverError], int]] = [
    (errors.InvalidInput, 400),
    (errors.Unauthenticated, 401),
    (errors.Forbidden, 403),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.NoCapacity, 503),
    (errors.StoreUnavailable, 503),
    (errors.FencedOut, 409),
]


def install_error_handlers(app: FastAPI) -> None:
    async def on_takeover_error(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, errors.TakeoverError)
        status = next((code for kind, code in STATUS if isinstance(error, kind)), 500)
        body: dict[str, Any] = {"detail": error.message}
        if error.field:
            body["field"] = error.field
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if status == 503:
            headers = {"Retry-After": "5"}
        return JSONResponse(body, status_code=status, headers=headers)

    app.add_exception_handler(errors.TakeoverError, on_takeover_error)
