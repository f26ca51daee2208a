"""`takeover nodes join-token`: let a new machine join without the admin token.

As Docker Swarm's ``join-token`` and kubeadm's bootstrap tokens: the token registers nodes of one
region only, a number of times, until it expires or is revoked; the agent trades it for a node
token of its own at its first start.
"""

from __future__ import annotations

import json
import os
import re
import shlex

import typer

from takeover.cli.client import call, err
from takeover.cli.output import Output, OutputOption, emit
from takeover.cli.resolve import pick
from takeover.cli.tables import out

app = typer.Typer(
    help="Join tokens: `takeover nodes join-token --region R` prints the command for a new machine",
    invoke_without_command=True,
)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(text: str) -> int:
    """ "90", "90s", "30m", "24h" or "7d" in seconds; anything else stops the command naming it."""
    found = re.fullmatch(r"\s*([0-9]+)\s*([smhd]?)\s*", text)
    if found is None:
        raise typer.BadParameter(f"{text!r} is not a duration: give e.g. 30m, 24h or 7d", param_hint="--ttl")
    return int(found[1]) * _UNITS[found[2] or "s"]


@app.callback()
def create(
    ctx: typer.Context,
    region: str | None = typer.Option(None, help="the region the new nodes join (required)"),
    ttl: str = typer.Option("1h", help="how long it lets machines in: 30m, 24h, 7d (at most 30d)"),
    uses: int = typer.Option(1, help="how many machines it may register"),
    url: str | None = typer.Option(
        None, help="the control plane as the new machine reaches it (default: TAKEOVER_URL)"
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="print only the token"),
    output: Output = OutputOption,
) -> None:
    """Make a join token and print the one command that joins a new machine to the pool."""
    if ctx.invoked_subcommand is not None:
        return
    if region is None:
        raise typer.BadParameter("name the region the new nodes join", param_hint="--region")
    body = {"region": region, "ttl_seconds": parse_ttl(ttl), "max_uses": uses}
    made = call("POST", "/api/v1/join-tokens", json=body)
    where = url or os.environ.get("TAKEOVER_URL", "http://127.0.0.1:8080")
    command = f"TAKEOVER_URL={shlex.quote(where)} TAKEOVER_JOIN_TOKEN={made['token']} takeover agent"
    if quiet:
        print(made["token"])
    elif output is Output.JSON:
        print(json.dumps({**made, "command": command}, indent=2))
    else:  # the line to run alone on stdout, for a script to take
        err.print(
            f"join token {made['id'][:8]}: {made['max_uses']} node(s) of region {made['region']}, "
            f"until {made['expires_at']}. On the new machine (with its NODE_NAME, NODE_HOST, "
            "TAKEOVER_SNAPSHOT_STORE, ... as it needs):",
            soft_wrap=True,
        )
        print(command)


@app.command("list")
def list_join_tokens(
    ended: bool = typer.Option(False, help="also those expired, used up or revoked"),
    output: Output = OutputOption,
) -> None:
    """Join tokens (never the secret): region, uses, expiry, whether it still lets machines in."""
    rows = call("GET", "/api/v1/join-tokens", params={"ended": ended or None})
    if output is not Output.JSON:
        for row in rows:
            row["uses"] = f"{row['uses']}/{row['max_uses']}"
    columns = ("id", "region", "uses", "expires_at", "live", "created_by")
    emit("join tokens", rows, columns, output, wide=("created_at", "revoked_at"))


@app.command("revoke")
def revoke(token_id: str = typer.Argument(help="the join token's id, or the start of it")) -> None:
    """It lets no more machines in; nodes that joined with it keep their own tokens."""
    found = pick("join token", token_id, call("GET", "/api/v1/join-tokens"), names=False)
    call("DELETE", f"/api/v1/join-tokens/{found['id']}")
    out.print(f"join token {found['id']} revoked")
