"""Connection groups from TOML and YAML, document 004's variables, and clear errors."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from takeover.regions import ConfigError, MultiRegion, MultiRegionConfig, load_config

TOML = """
[[groups]]
group_id = "datasul-emp"
description = "Datasul Empresa database"
current_region = "DtsPrdEmp"

[groups.failover_policy]
max_failures = 3
failure_window = 30000
auto_failback = false

[[groups.regions]]
connection_id = "DtsPrdEmp"
region = "sao-paulo"
priority = "primary"
dsn = "host=10.0.0.1 dbname=ems2emp"
latency_ms = 10

[[groups.regions]]
connection_id = "DtsPrdEmpRJ"
region = "rio-janeiro"
priority = "secondary"
dsn = "host=10.0.0.2 dbname=ems2emp"
latency_ms = 50
read_only = true
"""

YAML = """
groups:
  - group_id: emp
    regions:
      - {connection_id: a, region: r1, priority: 1, dsn: "host=a"}
      - {connection_id: b, region: r2, priority: 2, dsn: "host=b", read_only: true}
"""


def test_a_toml_file_as_in_the_document(tmp_path: Path) -> None:
    path = tmp_path / "multi-region.toml"
    path.write_text(TOML)
    config = load_config(path, environ={})
    [group] = config.groups
    assert [r.priority for r in group.regions] == [1, 2]
    policy = group.failover_policy.policy()
    assert (policy.max_failures, policy.failure_window, policy.auto_failback) == (
        3,
        timedelta(seconds=30),
        False,
    )
    assert policy.health_check_interval == timedelta(seconds=30)  # the document's default
    assert group.specs()[1].read_only


def test_a_yaml_file_and_the_variables_override_every_group(tmp_path: Path) -> None:
    path = tmp_path / "multi-region.yaml"
    path.write_text(YAML)
    env = {
        "MULTI_REGION_ENABLED": "false",
        "MULTI_REGION_AUTO_FAILBACK": "false",
        "MULTI_REGION_HEALTH_CHECK_INTERVAL": "5000",
    }
    config = load_config(path, environ=env)
    assert config.enabled is False
    policy = config.groups[0].failover_policy
    assert (policy.auto_failback, policy.health_check_interval) == (False, 5000)


@pytest.mark.parametrize(
    ("text", "suffix", "message"),
    [
        ("groups = [", ".toml", "not valid TOML"),
        (
            "groups: [{group_id: g, regions: []}]",
            ".yaml",
            "groups.0.regions: List should have at least 1 item",
        ),
        (
            YAML.replace("priority: 2", "priority: 0"),
            ".yaml",
            "priority: Input should be greater than or equal to 1",
        ),
        (YAML.replace("connection_id: b", "connection_id: a"), ".yaml", "a connection_id appears twice"),
        (
            YAML.replace('dsn: "host=b"', 'dsn: "host=b", colour: red'),
            ".yaml",
            "colour: Extra inputs are not permitted",
        ),
        ("- just a list", ".yaml", "expected a table with 'groups'"),
        (
            YAML.replace('dsn: "host=b"', 'dsn: "host=b", url: "mssql+pyodbc://b"'),
            ".yaml",
            "region b: give exactly one of dsn (psycopg) or url (SQLAlchemy)",
        ),
        (
            YAML.replace('dsn: "host=b"', "latency_ms: 1"),
            ".yaml",
            "region b: give exactly one of dsn (psycopg) or url (SQLAlchemy)",
        ),
    ],
)
def test_a_bad_file_is_refused_naming_the_problem(
    tmp_path: Path, text: str, suffix: str, message: str
) -> None:
    path = tmp_path / f"config{suffix}"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(path, environ={})


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: No such file or directory"):
        load_config(tmp_path / "nope.toml", environ={})


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("nosuchdb://x", "url nosuchdb://x: Can't load plugin: sqlalchemy.dialects:nosuchdb"),
        ("not a url", "url 'not a url': Could not parse SQLAlchemy URL"),
        (
            "postgresql+psycopg2://u:secret@h/db",
            "url postgresql+psycopg2://u:***@h/db: No module named 'psycopg2'",
        ),
    ],
)
def test_an_sqlalchemy_url_that_cannot_be_used_is_named_without_its_password(url: str, message: str) -> None:
    config = MultiRegionConfig.model_validate(
        {
            "groups": [
                {
                    "group_id": "g",
                    "regions": [{"connection_id": "a", "region": "r", "priority": 1, "url": url}],
                }
            ]
        }
    )
    with pytest.raises(ConfigError, match=re.escape(message)):
        MultiRegion(config, registry=CollectorRegistry())
