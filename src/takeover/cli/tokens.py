"""`takeover token`: creates tokens directly in the store, so the first admin can bootstrap."""

from __future__ import annotations

import typer
from rich.console import Console

from takeover.cli.serve import load_settings
from takeover.domain.errors import TakeoverError
from takeover.domain.models import Role

app = typer.Typer(help="API tokens", no_args_is_help=True)
out = Console()


@app.command("create")
def create(
    role: Role = typer.Option(..., help="admin or user (node tokens come with `nodes register`)"),
    subject: str = typer.Option("admin", help="who the token is for; users own what they create"),
) -> None:
    """Create a token and print it once; only its hash is stored."""
    from takeover.control.services import Services
    from takeover.main import SystemClock, open_store
    from takeover.metrics import Metrics

    services = Services(open_store(load_settings()), SystemClock(), Metrics())
    try:
        record, raw = services.create_token(role, subject)
    except TakeoverError as error:
        out.print(f"[red]error:[/] {error.message}")
        raise typer.Exit(1) from error
    out.print(f"{record.role} token for {record.subject} (id {record.id}):")
    print(raw)
