"""`takeover db`: look at and steer takeover.regions connection groups.

status and check read the groups file and probe every region now. failover and failback set
the group's shared decision in the control plane (TAKEOVER_URL, TAKEOVER_TOKEN), which every
application process with ``shared`` configured follows within one health check interval.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer
from prometheus_client import CollectorRegistry

from takeover.cli.client import call
from takeover.cli.tables import out, print_table

app = typer.Typer(help="Application database groups (takeover.regions, document 004)", no_args_is_help=True)
ConfigOption = typer.Option(
    Path(os.environ.get("TAKEOVER_REGIONS_CONFIG", "multi-region.toml")),
    "--config",
    help="groups file (.toml / .yaml); default $TAKEOVER_REGIONS_CONFIG or multi-region.toml",
)


def _probed(config: Path) -> list[dict[str, object]]:
    from takeover.regions import ConfigError, MultiRegion, load_config

    try:
        loaded = load_config(config).model_copy(update={"shared": None})  # looking, not deciding
        regions = MultiRegion(loaded, registry=CollectorRegistry())
    except ConfigError as error:
        out.print(f"[red]error:[/] {error}", soft_wrap=True)
        raise typer.Exit(2) from error
    with regions:
        answers = regions.check(everything=True)
        rows = []
        for group in regions.status():
            for region in group["regions"]:
                problem = answers[(group["group_id"], region["connection_id"])]
                rows.append(
                    {"group": group["group_id"], **region, "healthy": problem is None, "last_error": problem}
                )
        return rows


@app.command("status")
def status(config: Path = ConfigOption) -> None:
    """Every region of every group, probed now: healthy, writable, last error."""
    rows = _probed(config)
    columns = (
        "group",
        "connection_id",
        "region",
        "priority",
        "healthy",
        "writable",
        "read_only",
        "last_error",
    )
    print_table("regions", columns, rows)
    if os.environ.get("TAKEOVER_URL"):
        decisions = call("GET", "/api/v1/region-groups")
        print_table(
            "shared decisions", ("group_id", "current_region", "epoch", "updated_by", "reason"), decisions
        )


@app.command("check")
def check(config: Path = ConfigOption) -> None:
    """Probe every region; exit 1 if any is down (for cron and CI)."""
    rows = _probed(config)
    down = [f"{r['group']}/{r['connection_id']}: {r['last_error']}" for r in rows if not r["healthy"]]
    for line in down:
        out.print(f"[red]down[/] {line}", soft_wrap=True)
    if down:
        raise typer.Exit(1)
    out.print(f"all {len(rows)} region(s) healthy")


@app.command("failover")
def failover(group: str, region: str, reason: str = typer.Option("manual failover", help="recorded")) -> None:
    """Move GROUP to REGION for every process that follows the shared decision."""
    decision = call(
        "PUT", f"/api/v1/region-groups/{group}", json={"current_region": region, "reason": reason}
    )
    out.print(f"{group} -> {decision['current_region']} (epoch {decision['epoch']})")


@app.command("failback")
def failback(group: str, config: Path = ConfigOption) -> None:
    """Move GROUP back to its highest-priority healthy region."""
    rows = [r for r in _probed(config) if r["group"] == group]
    if not rows:
        out.print(f"[red]error:[/] {config} has no group {group!r}")
        raise typer.Exit(2)
    healthy = sorted((r for r in rows if r["healthy"]), key=lambda r: int(str(r["priority"])))
    if not healthy:
        out.print(f"[red]error:[/] no region of {group} is healthy")
        raise typer.Exit(1)
    best = str(healthy[0]["connection_id"])
    decision = call(
        "PUT", f"/api/v1/region-groups/{group}", json={"current_region": best, "reason": "manual failback"}
    )
    out.print(f"{group} -> {decision['current_region']} (epoch {decision['epoch']})")
