"""`takeover check`: the store against the invariants of docs/architecture.md, e.g. after a restore."""

from __future__ import annotations

import typer
from rich.console import Console

from takeover.cli.serve import load_settings

out = Console()


def check(
    settled: bool = typer.Option(False, help="also report failovers still in flight"),
) -> None:
    """Read the store (TAKEOVER_DATABASE_URL) and print every invariant it breaks; exit 1 if any."""
    from takeover.main import open_store
    from takeover.store.invariants import violations

    store = open_store(load_settings())
    try:
        found = violations(store.engine, settled)
    finally:
        store.engine.dispose()
    for problem in found:
        out.print(f"[red]violation:[/] {problem}", soft_wrap=True)
    if found:
        raise typer.Exit(1)
    out.print("the store holds every invariant")
