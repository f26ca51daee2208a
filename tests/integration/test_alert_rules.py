"""Alert rules (document 004's for takeover.regions, the control plane's): valid for promtool,
firing as intended in their promtool unit tests, on metrics we export."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest
from prometheus_client import CollectorRegistry

from takeover.domain.models import Instance, InstanceSpec, InstanceState
from takeover.metrics import Metrics
from takeover.regions.metrics import RegionMetrics

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def promtool(*args: str) -> str:
    tool = shutil.which("promtool")
    assert tool is not None, "promtool missing: ./dev test installs Debian's prometheus package"
    result = subprocess.run([tool, *args], capture_output=True, text=True, cwd=RULES, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.parametrize(("rules", "count"), [("multi-region", 4), ("control-plane", 9)])
def test_the_rules_pass_promtool_check_and_their_unit_tests(rules: str, count: int) -> None:
    assert f"SUCCESS: {count} rules found" in promtool("check", "rules", f"{rules}.rules.yml")
    assert "SUCCESS" in promtool("test", "rules", f"{rules}.test.yml")


def test_every_metric_the_rules_use_is_exported() -> None:
    registry = CollectorRegistry()
    RegionMetrics(registry)
    metrics = Metrics()
    metrics.watch_pool(lambda: {"nodes": {"offline": 1}, "instances": {"running": 1}})
    metrics.rent_failures.labels("budget").inc()
    metrics.watch_snapshots(
        lambda: [Instance(uuid4(), "o", "web", InstanceSpec(("x",)), None, 1, InstanceState.RUNNING)],
        lambda: datetime.now(UTC),
    )
    exported = {
        sample_name
        for source in (registry, metrics.registry)
        for family in source.collect()
        for sample_name in _names(family.name, family.type)
    }
    for rules in RULES.glob("*.rules.yml"):
        expressions = [line for line in rules.read_text().splitlines() if not line.lstrip().startswith("#")]
        used = set(re.findall(r"takeover_\w+", "\n".join(expressions)))
        assert used <= exported, (rules.name, used - exported)


def _names(name: str, kind: str) -> list[str]:
    return [f"{name}_total"] if kind == "counter" else [name]
