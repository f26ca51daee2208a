"""`takeover volumes`: regional volumes (document 002)."""

from __future__ import annotations

import typer

from takeover.cli.client import call
from takeover.cli.output import Output, OutputOption, emit, emit_one
from takeover.cli.tables import out, print_table

app = typer.Typer(
    help="Regional volumes: workspaces on storage shared by a region's nodes", no_args_is_help=True
)


@app.command("create")
def create(
    name: str,
    region: str = typer.Option(..., help="the region whose nodes share it"),
    size_gb: int = typer.Option(
        10, min=1, help="its size in GB, as recorded (the storage itself is yours to size)"
    ),
) -> None:
    """A regional volume: a directory on the storage every node of the region mounts, to use as an
    instance's workspace (instances create ... --volume ID); its failovers stay in that region."""
    volume = call(
        "POST",
        "/api/v1/failover/regional-volume/create",
        json={"name": name, "region": region, "size_gb": size_gb},
    )
    out.print(
        f"volume {volume['name']} (number {volume['number']}, id {volume['volume_id']}) in {volume['region']}"
    )


@app.command("list")
def list_volumes(output: Output = OutputOption) -> None:
    """Every regional volume you see, and the instance attached to each."""
    rows = call("GET", "/api/v1/failover/regional-volume/list")["volumes"]
    emit(
        "volumes", rows, ("name", "number", "volume_id", "region", "size_gb", "status", "attached_to"), output
    )


@app.command("delete")
def delete(volume: str = typer.Argument(help="the volume's id or number")) -> None:
    """Forget a volume no instance uses; its directory on the region's storage is left in place."""
    call("DELETE", f"/api/v1/failover/regional-volume/{volume}")
    out.print(f"volume {volume} deleted (its directory on the region's storage is left in place)")


@app.command("search")
def search(
    region: str,
    max_price: float | None = typer.Option(
        None, help="at most this many dollars per hour (the price_per_hour label)"
    ),
    gpu_name: str | None = typer.Option(None, help="this GPU model (the gpu_name label)"),
    output: Output = OutputOption,
) -> None:
    """A node of the region with a free slot, filtered by its labels."""
    found = call(
        "GET",
        f"/api/v1/failover/regional-volume/search/{region}",
        params={"max_price": max_price, "gpu_name": gpu_name},
    )
    if output is Output.JSON:
        emit_one("search", found, output)
        raise typer.Exit(0 if found["found"] else 1)
    if not found["found"]:
        out.print(f"no online node with a free slot in {region} matches")
        raise typer.Exit(1)
    print_table("best offer", tuple(found["offer"]), [found["offer"]])
