"""`takeover serve`: the control plane (API + controllers when this replica may lead)."""

from __future__ import annotations

import typer
import uvicorn
from pydantic import ValidationError
from rich.console import Console

from takeover.settings import Settings

err = Console(stderr=True)


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings.model_validate({k: v for k, v in overrides.items() if v is not None})
    except ValidationError as error:
        for problem in error.errors():
            where = ".".join(str(p) for p in problem["loc"])
            for message in problem["msg"].removeprefix("Value error, ").split("; "):
                prefix = f"TAKEOVER_{where.upper()}: " if where else ""
                err.print(f"[red]invalid setting:[/] {prefix}{message}", soft_wrap=True)
        raise typer.Exit(2) from error


def serve(
    host: str | None = typer.Option(None, help="listen address (TAKEOVER_HOST)"),
    port: int | None = typer.Option(None, help="listen port (TAKEOVER_PORT)"),
) -> None:
    """Run the control plane: REST API, and the controllers when this replica holds the lease."""
    from takeover.main import build

    settings = load_settings(host=host, port=port)
    runtime = build(settings)
    err.print(
        f"takeover serving on http://{settings.host}:{settings.port} (store: {settings.store_url.split('@')[-1]})"
    )
    uvicorn.run(
        runtime.app, host=settings.host, port=settings.port, log_level=settings.log_level, access_log=False
    )
