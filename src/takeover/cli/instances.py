"""`takeover instances`."""

from __future__ import annotations

import typer

from takeover.cli.client import call
from takeover.cli.tables import print_table

app = typer.Typer(help="Instances placed on the pool", no_args_is_help=True)


@app.command("list")
def list_instances() -> None:
    rows = call("GET", "/api/v1/instances")
    print_table("instances", ("name", "id", "owner", "node_id", "epoch", "state", "failover_enabled"), rows)
