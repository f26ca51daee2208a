"""Document 004's alert rules: valid for promtool, firing as intended, on metrics we export."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from prometheus_client import CollectorRegistry

from takeover.regions.metrics import RegionMetrics

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def promtool(*args: str) -> str:
    tool = shutil.which("promtool")
    assert tool is not None, "promtool missing: ./dev test installs Debian's prometheus package"
    result = subprocess.run([tool, *args], capture_output=True, text=True, cwd=RULES, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_rules_pass_promtool_check_and_their_unit_tests() -> None:
    assert "SUCCESS: 4 rules found" in promtool("check", "rules", "multi-region.rules.yml")
    assert "SUCCESS" in promtool("test", "rules", "multi-region.test.yml")


def test_every_metric_the_rules_use_is_exported_by_the_library() -> None:
    registry = CollectorRegistry()
    RegionMetrics(registry)
    exported = {
        sample_name for family in registry.collect() for sample_name in _names(family.name, family.type)
    }
    used = set(re.findall(r"takeover_multi_region_\w+", (RULES / "multi-region.rules.yml").read_text()))
    assert used <= exported, used - exported


def _names(name: str, kind: str) -> list[str]:
    return [f"{name}_total"] if kind == "counter" else [name]
