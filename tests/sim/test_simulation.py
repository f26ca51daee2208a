"""The deterministic simulation: a seed replays its run exactly, a bounded sweep keeps every safety
invariant, and the faults found on real processes are found again from a seed.

The schedules are the ones ``takeover sim`` runs (docs/simulation.md); each seed takes a few
seconds. Expected failures are what the failsafe issue must fix: strict, so its fix flips them.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from takeover.cli.app import app
from takeover.sim.findings import AVAILABILITY, SAFETY, Kind
from takeover.sim.run import Options, simulate
from takeover.sim.runners import Models

SWEEP = range(1, 7)  # seeds of the random scenario the suite runs (bench-size sweeps: takeover sim --seeds)


def kinds(options: Options, seed: int) -> set[Kind]:
    return {v.kind for v in simulate(seed, options).findings.violations}


def test_a_seed_replays_its_run_event_for_event() -> None:
    first, again = simulate(3), simulate(3)
    assert first.trace == again.trace
    assert first.digest == again.digest
    assert first.events > 1000
    assert any("process started" in line for line in first.trace)
    assert simulate(4).digest != first.digest


def test_a_seed_replays_in_another_process_whatever_its_hash_seed() -> None:
    digests = set()
    for hash_seed in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-m", "takeover", "sim", "--seed", "3", "--check", "safety"],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        digests.add(done.stdout.split("run ", 1)[1].split()[0])
    assert len(digests) == 1


@pytest.mark.parametrize("seed", SWEEP)
def test_random_faults_keep_every_invariant(seed: int) -> None:
    """Safety, and availability too: no control-plane fault stops or moves a healthy runner."""
    report = simulate(seed, Options())
    assert report.findings.of(SAFETY | AVAILABILITY) == []
    assert report.findings.checked[Kind.ONE_RUNNER] >= report.instances
    assert report.findings.checked[Kind.SETTLES] == report.instances


def test_a_hung_agent_runs_beside_the_new_copy_without_keepers_and_not_with_them() -> None:
    assert Kind.ONE_RUNNER in kinds(Options("hung-agent", Models(keepers=False)), 1)
    assert kinds(Options("hung-agent"), 1) & SAFETY == set()


def test_a_clock_stepped_back_loses_snapshots_when_the_node_stamps_them_and_not_otherwise() -> None:
    assert Kind.ACKED_KEPT in kinds(Options("agent-clock-step", Models(cp_clock_stamps=False)), 1)
    assert kinds(Options("agent-clock-step"), 1) & SAFETY == set()


def test_two_writers_on_a_volume_lose_acknowledged_writes_without_the_epoch_guard() -> None:
    found = kinds(Options("hung-agent", Models(keepers=False), epoch_guard=False), 2)
    assert {Kind.ONE_RUNNER, Kind.ACKED_KEPT} <= found


def test_the_control_plane_away_stops_no_runner_and_fails_over_no_healthy_node() -> None:
    """Witnesses vouch that the control plane is away for everyone (it stopped them all before)."""
    assert kinds(Options("cp-away"), 1) & (SAFETY | AVAILABILITY) == set()


def test_a_region_cut_off_keeps_its_runners_and_is_not_failed_over() -> None:
    """Its nodes vouch for each other, and nobody outside can prove their fences."""
    assert kinds(Options("region-cut"), 1) & (SAFETY | AVAILABILITY) == set()


def test_a_replica_clock_step_keeps_one_runner() -> None:
    """Silence is measured on the leader's monotonic clock (it broke one runner at seed 7 before)."""
    assert kinds(Options("replica-clock-step"), 7) & (SAFETY | AVAILABILITY) == set()


def test_the_command_reports_the_invariants_and_the_replay() -> None:
    runner = CliRunner()
    done = runner.invoke(app, ["sim", "--seed", "1", "--scenario", "hung-agent", "--no-keepers"])
    assert done.exit_code == 1
    assert "BROKEN one runner per instance" in done.output
    assert "replay: takeover sim --seed 1 --scenario hung-agent" in done.output
    ok = runner.invoke(app, ["sim", "--seed", "1", "--scenario", "hung-agent", "--check", "safety"])
    assert ok.exit_code == 0, ok.output
    assert "held   one runner per instance" in ok.output


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--scenario", "nope"], "--scenario"),
        (["--check", "most"], "--check"),
        (["--without", "meteor"], "--without"),
        (["--seeds", "0"], "--seeds"),
    ],
)
def test_bad_options_are_named(args: list[str], named: str) -> None:
    done = CliRunner().invoke(app, ["sim", *args])
    assert done.exit_code == 2
    assert named in done.output
