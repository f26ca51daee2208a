"""`takeover leader`: which control-plane replica runs the controllers."""

from __future__ import annotations

from takeover.cli.client import call
from takeover.cli.output import Output, OutputOption, emit_one
from takeover.cli.tables import out


def leader(output: Output = OutputOption) -> None:
    """Show the replica holding the leader lease, its fencing epoch and when the lease expires."""
    lease = call("GET", "/api/v1/leader")
    if output is Output.JSON:
        emit_one("leader", lease, output)
        return
    if lease["holder"] is None:
        out.print("no replica has taken the leader lease yet")
        return
    state = "held" if lease["current"] else "expired or released: the next replica to cycle takes it"
    out.print(
        f"leader {lease['holder']} at epoch {lease['epoch']}, lease until {lease['expires_at']} ({state})"
    )
    if lease["answered_by"] is not None:
        out.print(f"answered by replica {lease['answered_by']}")
