"""`takeover failover`: list, show, start, and document 002's strategies, readiness and execute."""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import typer

from takeover.cli import resolve
from takeover.cli.client import call
from takeover.cli.output import Output, OutputOption, WatchOption, emit, emit_one, emit_watching
from takeover.cli.tables import out, print_table

app = typer.Typer(help="Failovers", no_args_is_help=True)


@app.command("list")
def list_failovers(
    instance: str | None = typer.Option(None, help="only this instance's (name or id)"),
    status: str | None = None,
    output: Output = OutputOption,
    watch: bool = WatchOption,
) -> None:
    """Failovers, newest first: where from and to, how long, and the snapshot restored and its age."""
    instance_id = resolve.instance(instance)["id"] if instance else None

    def frame() -> tuple[str, list[dict[str, Any]], tuple[str, ...], tuple[str, ...]]:
        rows = call("GET", "/api/v1/failovers", params={"instance_id": instance_id, "status": status})
        _describe(rows, output)
        return (
            "failovers",
            rows,
            ("id", "instance", "reason", "status", "route", "took", "down", "snap_age"),
            ("strategy", "attempts", "detected", "backup_id", "start_empty", "created_at", "error"),
        )

    emit_watching(frame, output, watch)


def _describe(rows: list[dict[str, Any]], output: Output) -> dict[str, str]:
    """Names and readable figures beside the ids, for people (JSON keeps the records as they are);
    the node names it used."""
    if output is Output.JSON:
        return {}
    names = {i["id"]: i["name"] for i in call("GET", "/api/v1/instances")}
    nodes = resolve.node_names()
    for row in rows:
        total = row["timings"].get("total_ms")
        row["instance"] = names.get(row["instance_id"], row["instance_id"][:8])
        row["route"] = " -> ".join(
            nodes.get(n, n[:8]) if n else "?" for n in (row["source_node_id"], row["target_node_id"])
        )
        row["took"] = f"{total / 1000:.1f} s" if total is not None else "-"
        # A node failure's outage began at the node's last heartbeat, not when the failover opened.
        row["down"] = f"{row['downtime_s']:.1f} s" if row.get("downtime_s") is not None else "-"
        row["detected"] = f"{row['detection_s']:.1f} s" if row.get("detection_s") is not None else "-"
        age = row["backup_age_s"]
        row["snap_age"] = f"{age:.1f} s" if age is not None else "-"
    return nodes


@app.command("show")
def show(
    failover: str = typer.Argument(help="the failover's id or the start of it"), output: Output = OutputOption
) -> None:
    """One failover: steps and their timings, every attempt, the snapshot restored and its age."""
    record = resolve.failover(failover)
    if output is Output.JSON:
        emit_one("failover", record, output)
        return
    nodes = _describe([record], output)
    out.print(
        f"failover {record['id']} of {record['instance']}: {record['reason']}, {record['status']}"
        f" ({record['route']}, {record['took']})"
    )
    if record["backup_id"]:
        out.print(f"restored snapshot {record['backup_id']}, {record['snap_age']} old when it began")
    if record["start_empty"]:
        out.print("[yellow]an admin allowed it to start empty if no snapshot restored[/]")
    if record["error"]:
        out.print(f"[red]error:[/] {record['error']}", soft_wrap=True)
    steps = [{"step": k.removesuffix("_ms"), "ms": v} for k, v in record["timings"].items()]
    print_table("steps", ("step", "ms"), steps)
    attempts = [
        {**a, "node": nodes.get(a.get("node_id") or "", a.get("node_id"))} for a in record["attempt_log"]
    ]
    print_table("attempts", ("strategy", "node", "ms", "error"), attempts)


@app.command("start")
def start(
    instance: str = typer.Argument(help="the instance's name, id, or the start of its id"),
    target: str | None = typer.Option(None, help="target node name or id (admin only)"),
    reason: str = typer.Option("manual", help="manual, load_balance, maintenance or health_degraded"),
    start_empty: bool = typer.Option(
        False,
        "--start-empty",
        help="admin only: if no snapshot can be restored, start it with an empty workspace (its data is lost)",
    ),
) -> None:
    """Ask the control plane to move an instance; prints the failover id to follow."""
    body = {
        "instance_id": resolve.instance(instance)["id"],
        "reason": reason,
        "target_node_id": resolve.node(target)["id"] if target else None,
        "start_empty": start_empty,
    }
    failover = call("POST", "/api/v1/failovers", json=body)
    out.print(f"failover {failover['id']} {failover['status']}")


@app.command("strategy")
def set_strategy(
    instance_id: str,
    strategy: str = typer.Argument(
        help="warm_pool, cpu_standby (snapshot_restore), both, regional_volume, disabled"
    ),
) -> None:
    """Choose how this instance fails over."""
    instance = call(
        "PATCH",
        f"/api/v1/instances/{resolve.instance(instance_id)['id']}",
        json={"failover_strategy": strategy},
    )
    out.print(f"{instance['name']} fails over with {instance['failover_strategy']}")


@app.command("strategies")
def strategies(output: Output = OutputOption) -> None:
    """The strategies, with their recovery time and cost."""
    rows = call("GET", "/api/v1/failover/strategies")["strategies"]
    emit("strategies", rows, ("id", "name", "recovery_time", "cost"), output, wide=("requirements", "steps"))


@app.command("readiness")
def readiness(instance_id: str, output: Output = OutputOption) -> None:
    """Could each strategy fail this instance over now, and what to do if not."""
    instance_id = resolve.instance(instance_id)["id"]
    ready = call("GET", f"/api/v1/failover/readiness/{instance_id}")
    if output is Output.JSON:
        emit_one("readiness", ready, output)
        return
    status = call("GET", f"/api/v1/failover/status/{instance_id}")
    rows = [
        {
            "strategy": name,
            "ready": "yes" if ready[f"{name}_ready"] else "no",
            "details": _said(ready[f"{name}_status"]),
        }
        for name in ("warm_pool", "cpu_standby", "regional_volume")
    ]
    print_table(
        f"{ready['effective_strategy']}: {'ready' if ready['overall_ready'] else 'not ready'}",
        ("strategy", "ready", "details"),
        rows,
    )
    if status["recommended_action"]:
        out.print(f"recommended: {status['recommended_action']}", soft_wrap=True)


def _said(details: Any) -> str:
    """A readiness detail as a person reads it: ``key: value`` pairs, not a dict's repr."""
    if not isinstance(details, dict):
        return str(details)
    return ", ".join(f"{k.replace('_', ' ')}: {'-' if v is None else v}" for k, v in details.items())


def _follow(instance_id: str, answer: Future[Any]) -> None:
    """Print the steps and attempts of the instance's newest failover as they are recorded,
    until the execute call answers."""
    started = datetime.now(UTC) - timedelta(seconds=5)  # the control plane's clock may differ a bit
    shown: set[str] = set()
    while True:
        done = answer.done()
        failovers = call("GET", "/api/v1/failovers", params={"instance_id": instance_id})
        newest = next((f for f in failovers if datetime.fromisoformat(f["created_at"]) >= started), None)
        if newest is not None:
            for step, ms in newest["timings"].items():
                if step != "total_ms" and step not in shown:
                    shown.add(step)
                    out.print(f"  {step.removesuffix('_ms'):<12} {ms:>9.0f} ms")
            for n, attempt in enumerate(newest["attempt_log"], start=1):
                key = f"attempt {n} {attempt.get('ms')}"
                if attempt.get("ms") is not None and key not in shown:
                    shown.add(key)
                    error = f": {attempt['error']}" if attempt.get("error") else ""
                    out.print(
                        f"  attempt {n}: {attempt['strategy']} on {str(attempt.get('node_id'))[:8]}{error}"
                    )
        if done:
            return
        time.sleep(0.25)


@app.command("execute")
def execute(
    instance_id: str,
    strategy: str | None = typer.Option(None, help="force a strategy for this failover"),
    dry_run: bool = typer.Option(False, "--dry-run", help="only say what would be tried"),
) -> None:
    """Fail over now and wait for the outcome (document 002's execute)."""
    instance_id = resolve.instance(instance_id)["id"]
    if dry_run:
        result = call(
            "POST", f"/api/v1/failover/test/{instance_id}", params={"dry_run": True, "strategy": strategy}
        )
        out.print(
            f"would try {result['would_try']}; would succeed: {result['would_succeed']}"
            + (f" ({result['recommended_action']})" if result.get("recommended_action") else ""),
            soft_wrap=True,
        )
        return
    body = {"machine_id": instance_id, "force_strategy": strategy}
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(call, "POST", "/api/v1/failover/execute", json=body)
        _follow(instance_id, answer)
        result = answer.result()
    if not result["success"]:
        out.print(f"[red]failover {result['failover_id']} failed:[/] {result['error']}", soft_wrap=True)
        raise typer.Exit(1)
    stable = f" (clients: {result['stable_address']})" if result.get("stable_address") else ""
    out.print(
        f"failover {result['failover_id']}: {result['strategy_succeeded']} on {result['new_node_name']}, "
        f"serving at {result['new_ssh_host']}:{result['new_ssh_port']}{stable}, {result['total_ms']:.0f} ms",
        soft_wrap=True,
    )
