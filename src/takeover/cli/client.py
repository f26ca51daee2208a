"""HTTP client of the CLI: one place that turns API and network errors into clear messages."""

from __future__ import annotations

import os
from typing import Any

import httpx
import typer
from rich.console import Console

err = Console(stderr=True)


def call(method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None) -> Any:
    url = os.environ.get("TAKEOVER_URL", "http://127.0.0.1:8080").rstrip("/")
    token = os.environ.get("TAKEOVER_TOKEN") or os.environ.get("TAKEOVER_ADMIN_TOKEN")
    if not token:
        err.print("[red]error:[/] set TAKEOVER_TOKEN to an API token (see `takeover token create`)")
        raise typer.Exit(2)
    params = {k: v for k, v in (params or {}).items() if v is not None}
    try:
        response = httpx.request(
            method,
            url + path,
            json=json,
            params=params,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
    except httpx.HTTPError as error:
        err.print(f"[red]error:[/] cannot reach the control plane at {url}: {error}")
        raise typer.Exit(1) from error
    if response.status_code >= 400:
        err.print(f"[red]error {response.status_code}:[/] {_detail(response)}")
        raise typer.Exit(1)
    return response.json() if response.content else None


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, list):  # validation errors: each field in a person's words
        return "; ".join(_field_error(d) for d in detail if isinstance(d, dict))
    field = f" (field: {body['field']})" if isinstance(body, dict) and body.get("field") else ""
    return f"{detail}{field}"


_WORDS = {
    "uuid_parsing": "is not a valid id",
    "missing": "is required",
    "extra_forbidden": "is not a field this accepts",
}


def _field_error(error: dict[str, Any]) -> str:
    """``body.spec.command: Value error, ...`` becomes ``spec.command: ...``."""
    loc = [str(p) for p in error.get("loc", [])]
    where = ".".join(loc[1:] if loc and loc[0] in ("body", "query", "path") else loc) or "request"
    message = _WORDS.get(str(error.get("type")), str(error.get("msg", "is invalid")))
    return f"{where}: {message.removeprefix('Value error, ')}"
