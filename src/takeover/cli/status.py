"""`takeover status`: whether the pool the other commands show can be trusted now."""

from __future__ import annotations

import typer

from takeover.cli.client import call
from takeover.cli.output import Output, OutputOption, emit_one
from takeover.cli.tables import out


def status(output: Output = OutputOption) -> None:
    """Say what the control plane cannot vouch for now (its store refuses writes, nobody leads,
    nodes silent but not proven stopped); exit 1 if anything, for scripts and checks."""
    found = call("GET", "/api/v1/status")
    if output is Output.JSON:
        emit_one("status", found, output)
    elif found["ok"]:
        out.print(
            f"ok: the store takes writes, {found['leader']} leads, every online node was heard from"
            f" within {found['silent_after_s']:g} s"
        )
    else:
        for problem in found["problems"]:
            out.print(f"- {problem}")
    if not found["ok"]:
        raise typer.Exit(1)
