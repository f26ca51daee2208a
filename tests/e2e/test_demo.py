"""`takeover demo`, the README's main command, runs to the end and says the counts survived."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from takeover.localcluster import TAKEOVER

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("runtime", ["process", "container", "rent"])
def test_the_demo_recovers_every_counter_with_its_count(runtime: str) -> None:
    if runtime == "container" and shutil.which("podman") is None:
        pytest.skip("podman is not installed (./dev test installs it)")
    env = {**os.environ, "COLUMNS": "200"}
    extra = {"process": [], "container": ["--containers"], "rent": ["--rent"]}[runtime]
    result = subprocess.run(
        [*TAKEOVER, "demo", "--instances", "2", *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "every counter serves again on a live node with its count intact" in result.stdout
    assert "detection: node offline" in result.stdout
    assert "Traceback" not in result.stderr
    if runtime == "rent":  # both counters now run on machines rented for them
        assert result.stdout.count("rent-") >= 2
        assert "rented machines" in result.stdout
