"""`takeover snapshots`: verify the snapshot store every node shares."""

from __future__ import annotations

import os

import typer

from takeover.cli.tables import out, print_table

app = typer.Typer(help="The snapshot store: check it for damage", no_args_is_help=True)


@app.command("check")
def check(
    store: str = typer.Option(
        None, help="a directory or s3://bucket/prefix (default: $TAKEOVER_SNAPSHOT_STORE, as the agents use)"
    ),
    read_data: bool = typer.Option(False, help="read and hash every chunk, not only check its size"),
) -> None:
    """Name every damaged manifest and chunk and the snapshots each breaks; exit 1 if any."""
    from takeover.snapshots.check import check_store
    from takeover.snapshots.objects import SnapshotStoreError, open_object_store

    location = store or os.environ.get("TAKEOVER_SNAPSHOT_STORE")
    if not location:
        out.print("[red]error:[/] name the store: --store DIR|s3://bucket/prefix or TAKEOVER_SNAPSHOT_STORE")
        raise typer.Exit(2)
    if "://" not in location and not os.path.isdir(location):
        out.print(f"[red]error:[/] no snapshot store at {location}: the directory does not exist")
        raise typer.Exit(2)
    try:
        report = check_store(open_object_store(location), read_data)
    except (SnapshotStoreError, OSError) as exc:
        out.print(f"[red]error:[/] snapshot store {location}: {exc}")
        raise typer.Exit(2) from exc
    for bad in report.manifests:
        out.print(
            f"[red]damaged manifest:[/] {bad.instance_id}/{bad.snapshot_id}: {bad.problem}", soft_wrap=True
        )
    if report.chunks_damaged:
        rows = [
            {"chunk": c.digest[:16], "problem": c.problem, "breaks": "\n".join(c.snapshots)}
            for c in report.chunks_damaged
        ]
        print_table("damaged chunks", ("chunk", "problem", "breaks"), rows)
    how = "read and hashed" if read_data else "size-checked"
    out.print(
        f"{report.snapshots} snapshot(s) of {report.instances} instance(s); {report.chunks} chunk(s) {how}"
        + (f" ({report.bytes_read / 1e6:.1f} MB read)" if read_data else "")
    )
    if not report.ok:
        out.print(f"[red]{len(report.broken_snapshots)} snapshot(s) cannot be restored[/]")
        raise typer.Exit(1)
    out.print("no damage found")
