"""The `takeover` command."""

from __future__ import annotations

import typer

from takeover.cli import db, failovers, instances, nodes, provider, routes, snapshots, tokens, volumes
from takeover.cli.agent import agent
from takeover.cli.check import check
from takeover.cli.demo import demo
from takeover.cli.events import events
from takeover.cli.leader import leader
from takeover.cli.serve import serve
from takeover.cli.sim import sim
from takeover.cli.status import status

app = typer.Typer(help="takeover: keeps workloads alive on a pool of nodes.", no_args_is_help=True)
app.command()(serve)
app.command()(agent)
app.command()(demo)
app.command()(check)
app.command()(leader)
app.command()(status)
app.command()(events)
app.command()(sim)
app.add_typer(tokens.app, name="token")
app.add_typer(nodes.app, name="nodes")
app.add_typer(instances.app, name="instances")
app.add_typer(failovers.app, name="failover")
app.add_typer(volumes.app, name="volumes")
app.add_typer(provider.app, name="provider")
app.add_typer(db.app, name="db")
app.add_typer(snapshots.app, name="snapshots")
app.add_typer(routes.app, name="routes")


def main() -> None:
    app()
