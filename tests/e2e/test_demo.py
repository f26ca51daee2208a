"""`takeover demo`, the README's main command, runs to the end and says the counts survived."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

import httpx
import pytest

from takeover.localcluster import ADMIN_TOKEN, TAKEOVER

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("runtime", ["process", "container", "rent"])
def test_the_demo_recovers_every_counter_with_its_count(runtime: str) -> None:
    if runtime in ("container", "rent") and shutil.which("podman") is None:
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
    if runtime == "rent":  # both counters ran on machines rented for them, given back once idle
        assert result.stdout.count("rent-") >= 2
        assert "rented machines" in result.stdout
        assert result.stdout.count(" released ") == 2, result.stdout[-3000:]


def test_with_pause_the_pool_stays_up_after_the_failover_until_enter() -> None:
    """So the console can show the failover the README promises, the demo waits twice."""
    env = {**os.environ, "COLUMNS": "200"}
    demo = subprocess.Popen(
        [*TAKEOVER, "demo", "--instances", "1", "--pause"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert demo.stdin is not None
    assert demo.stdout is not None
    said = bytearray()

    def until(text: str) -> str:
        while text.encode() not in said:
            chunk = demo.stdout.read1(4096)  # type: ignore[union-attr]
            assert chunk, said.decode(errors="replace")[-3000:]
            said.extend(chunk)
        return said.decode(errors="replace")

    try:
        until("press Enter to SIGKILL")
        demo.stdin.write(b"\n")
        demo.stdin.flush()
        shown = until("press Enter to stop the pool")
        url = re.search(r"control plane on (http://\S+)", shown)[1]  # type: ignore[index]
        time.sleep(1)
        assert httpx.get(f"{url}/livez", timeout=5).status_code == 200  # still up, for the console
        failovers = httpx.get(f"{url}/api/v1/failovers", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert failovers.json()[0]["status"] == "completed"
        demo.stdin.write(b"\n")
        demo.stdin.flush()
        assert demo.wait(timeout=60) == 0
    finally:
        demo.kill()
        demo.wait()
