"""`takeover provider`: what the pool and the marketplace offer, the machines rented, release."""

from __future__ import annotations

import typer

from takeover.cli.client import call
from takeover.cli.output import Output, OutputOption, emit
from takeover.cli.tables import out

app = typer.Typer(help="Capacity: offers, rented machines", no_args_is_help=True)


@app.command("offers")
def offers(
    region: str,
    gpu: list[str] = typer.Option([], help="accepted GPU model, repeatable (e.g. 4090)"),
    max_price: float | None = typer.Option(None, help="dollars per hour, at most"),
    spot: bool = typer.Option(False, help="interruptible offers"),
    output: Output = OutputOption,
) -> None:
    """The pool's nodes with room (source pool), then what would be rented, cheapest first."""
    params = {"region": region, "gpu": gpu, "max_price": max_price, "spot": spot}
    found = call("GET", "/api/v1/provider/offers", params=params)["offers"]
    emit(
        f"offers in {region}",
        found,
        ("source", "offer_id", "name", "gpu_name", "num_gpus", "price_per_hour", "reliability"),
        output,
        wide=("free_slots", "spot", "region"),
    )


@app.command("machines")
def machines(
    ended: bool = typer.Option(False, help="also those released or failed"), output: Output = OutputOption
) -> None:
    """Rented machines: state, price, cost so far, the node they are and what runs there."""
    rows = call("GET", "/api/v1/provider/machines", params={"ended": ended})
    if output is not Output.JSON:
        for row in rows:
            row["instances"] = ", ".join(row["instances"]) or "-"
            row["cost"] = f"${row['cost_so_far']:.4f}"
            row["price"] = f"${row['price_per_hour']}/h" if row["price_per_hour"] is not None else "-"
    emit(
        "rented machines",
        rows,
        ("id", "state", "gpu_name", "price", "cost", "node_name", "instances", "created_at"),
        output,
        wide=("provider", "machine_id", "offer_id", "region", "ssh_host", "ssh_port", "failover_id", "error"),
    )


@app.command("release")
def release(rental: str = typer.Argument(help="the rented machine's id, or the start of it")) -> None:
    """Give a rented machine back now (refused while an instance runs there: drain its node first)."""
    rows = call("GET", "/api/v1/provider/machines")
    matches = [r for r in rows if r["id"].startswith(rental)]
    if len(matches) != 1:
        what = "no rented machine" if not matches else f"{len(matches)} rented machines"
        out.print(f"[red]error:[/] {what} match {rental!r} (takeover provider machines lists them)")
        raise typer.Exit(1)
    done = call("POST", f"/api/v1/provider/machines/{matches[0]['id']}/release")
    out.print(
        f"machine {done['machine_id'] or done['id']} released ({done['provider']}, ${done['cost_so_far']:.4f})"
    )
