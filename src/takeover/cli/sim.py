"""`takeover sim`: the deterministic simulation, one seed or a sweep (docs/simulation.md)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import structlog
import typer

from takeover.sim.faults import SCENARIOS, Fault
from takeover.sim.findings import AVAILABILITY, SAFETY, Kind, Violation
from takeover.sim.runners import Models

if TYPE_CHECKING:
    from takeover.sim.run import Report

_TRACE_TAIL = 60  # trace lines shown before the first violation


def sim(
    seed: Annotated[int, typer.Option(help="the run to replay: the same seed is the same run")] = 1,
    seeds: Annotated[int, typer.Option(min=1, help="a sweep: this many seeds from --seed on")] = 1,
    scenario: Annotated[str, typer.Option(help=f"one of: {', '.join(SCENARIOS)}")] = "random",
    check: Annotated[str, typer.Option(help="safety, or all (availability too: the failsafe's)")] = "all",
    without: Annotated[
        list[str] | None, typer.Option(help="a fault the random scenario never draws (repeatable)")
    ] = None,
    keepers: Annotated[bool, typer.Option(help="model the processes' keepers")] = True,
    cp_clock_stamps: Annotated[
        bool, typer.Option(help="stamp snapshots by the control plane's clock (off: the node's, as before)")
    ] = True,
    epoch_guard: Annotated[bool, typer.Option(help="volume runners refuse writes once superseded")] = True,
    replicas: Annotated[
        int, typer.Option(min=0, max=5, help="control-plane replicas (0: from the seed)")
    ] = 0,
    store_url: Annotated[
        str, typer.Option(help="the control plane's store: in-memory SQLite, or an empty PostgreSQL")
    ] = "sqlite://",
    trace: Annotated[bool, typer.Option(help="print every event of the run")] = False,
) -> None:
    """Run the control plane and simulated agents on virtual time under faults drawn from the seed;
    check the invariants after every event. Exit status 1 when one is broken."""
    if scenario not in SCENARIOS:
        raise typer.BadParameter(f"{scenario!r}: one of {', '.join(SCENARIOS)}", param_hint="--scenario")
    if check not in ("safety", "all"):
        raise typer.BadParameter(f"{check!r}: safety or all", param_hint="--check")
    names = {f.value: f for f in Fault} | {f.name.lower(): f for f in Fault}
    unknown = [w for w in without or [] if w not in names]
    if unknown:
        raise typer.BadParameter(
            f"{', '.join(unknown)}: faults are {', '.join(f.name.lower() for f in Fault)}",
            param_hint="--without",
        )
    from takeover.sim.run import Options, simulate  # the server's code: only when a run is asked for

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    options = Options(
        scenario,
        Models(keepers=keepers, cp_clock_stamps=cp_clock_stamps),
        epoch_guard,
        replicas,
        store_url=store_url,
        without=frozenset(names[w] for w in without or []),
    )
    kinds = SAFETY if check == "safety" else SAFETY | AVAILABILITY
    failed = 0
    for run_seed in range(seed, seed + seeds):
        report = simulate(run_seed, options)
        broken = report.findings.of(kinds)
        failed += bool(broken)
        if seeds > 1:
            typer.echo(_line(report, broken))
        else:
            _show(report, broken, trace)
    if seeds > 1:
        typer.echo(f"{seeds - failed} of {seeds} seeds kept every {check} invariant")
    raise typer.Exit(1 if failed else 0)


def _line(report: Report, broken: Sequence[Violation]) -> str:
    verdict = f"{len(broken)} broken" if broken else "ok"
    return (
        f"seed {report.seed}: {verdict} ({report.failovers} failovers; {'; '.join(map(str, report.faults))})"
    )


def _show(report: Report, broken: Sequence[Violation], trace: bool) -> None:
    typer.echo(
        f"seed {report.seed}, scenario {report.scenario}: {report.nodes} nodes, {report.instances} instances, "
        f"{report.events} events over {report.duration:.0f} virtual seconds, run {report.digest}"
    )
    for fault in report.faults:
        typer.echo(f"  fault: {fault}")
    for kind in Kind:
        count = report.findings.checked.get(kind, 0)
        bad = [v for v in report.findings.violations if v.kind is kind]
        typer.echo(f"  {'BROKEN' if bad else 'held  '} {kind} (checked {count} times)")
    if trace:
        typer.echo("\n".join(report.trace))
    elif broken:
        first = min(v.at for v in report.findings.violations)
        before = [line for line in report.trace if float(line.split()[0]) <= first]
        typer.echo(f"\nthe last {_TRACE_TAIL} events up to the first violation (--trace for all):")
        typer.echo("\n".join(before[-_TRACE_TAIL:]))
    for violation in report.findings.violations:
        typer.echo(f"violation: {violation}")
    if broken:
        typer.echo(
            f"replay: takeover sim --seed {report.seed} --scenario {report.scenario} (and the same options)"
        )
