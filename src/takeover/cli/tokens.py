"""`takeover token`: create, list and revoke API tokens through the API (TAKEOVER_URL).

Only the first admin, before any server runs, is written into the store directly (``--store``).
"""

from __future__ import annotations

import typer

from takeover.cli.client import call
from takeover.cli.output import Output, OutputOption, emit
from takeover.cli.serve import load_settings
from takeover.cli.tables import out
from takeover.domain.errors import TakeoverError
from takeover.domain.models import Role
from takeover.domain.tokens import ADMIN_SUBJECT

app = typer.Typer(help="API tokens", no_args_is_help=True)


@app.command("create")
def create(
    role: Role = typer.Option(..., help="admin or user (node tokens come with `nodes register`)"),
    subject: str | None = typer.Option(
        None, help="who the token is for; users own what they create (required for users; admins: admin)"
    ),
    store: bool = typer.Option(
        False,
        "--store",
        help="write into the store of TAKEOVER_DATABASE_URL / TAKEOVER_DATA_DIR instead of asking the API "
        "(to bootstrap the first admin before any server runs)",
    ),
) -> None:
    """Create a token and print it once; only its hash is stored."""
    if subject is None:
        if role is Role.USER:
            raise typer.BadParameter(
                "name the user the token is for: they own what they create", param_hint="--subject"
            )
        subject = ADMIN_SUBJECT
    if store:
        record_role, record_subject, record_id, raw = _create_in_store(role, subject)
    else:
        created = call("POST", "/api/v1/tokens", json={"role": role.value, "subject": subject})
        record_role, record_subject, record_id, raw = (
            created["role"],
            created["subject"],
            created["id"],
            created["token"],
        )
    out.print(f"{record_role} token for {record_subject} (id {record_id}):")
    print(raw)


def _create_in_store(role: Role, subject: str) -> tuple[str, str, str, str]:
    from takeover.control.services import Services
    from takeover.main import SystemClock, open_store
    from takeover.metrics import Metrics

    services = Services(open_store(load_settings()), SystemClock(), Metrics())
    try:
        record, raw = services.create_token(role, subject)
    except TakeoverError as error:
        out.print(f"[red]error:[/] {error.message}")
        raise typer.Exit(1) from error
    return record.role, record.subject, str(record.id), raw


@app.command("list")
def list_tokens(output: Output = OutputOption) -> None:
    """Every admin and user token (never the secret): id, role, subject, created, revoked."""
    rows = call("GET", "/api/v1/tokens")
    emit("tokens", rows, ("id", "role", "subject", "created_at", "revoked_at"), output)


@app.command("revoke")
def revoke(token_id: str = typer.Argument(help="the token's id, or the start of it")) -> None:
    """Refuse the token from its next request on, on every replica."""
    ids = [t["id"] for t in call("GET", "/api/v1/tokens") if t["id"].startswith(token_id.lower())]
    if len(ids) != 1:
        out.print(f"[red]error:[/] {'no token' if not ids else 'several tokens'} with id {token_id!r}")
        raise typer.Exit(1)
    call("DELETE", f"/api/v1/tokens/{ids[0]}")
    out.print(f"token {ids[0]} revoked")
