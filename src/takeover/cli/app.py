"""The `takeover` command."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

import typer
from typer.core import TyperOption

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


def _flags_without_placeholders() -> None:
    """Typer 0.29 shows each flag's type in help as ``<bool>``, as if it took a value: it takes none."""
    typed = TyperOption.display_type_rich

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:  # typer's own vendored click
        return None if self.is_flag else typed(self, ctx)

    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_without_placeholders()


def _version(shown: bool) -> None:
    if shown:
        print(f"takeover {version('takeover')}")
        raise typer.Exit()


@app.callback()
def _main(
    _: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="print the version and exit"
    ),
) -> None:
    """takeover: keeps workloads alive on a pool of nodes."""


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
