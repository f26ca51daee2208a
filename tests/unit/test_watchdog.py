"""The watchdog's logic without the device (this machine has no /dev/watchdog): a file stands in,
so every write the agent makes to it can be read back."""

from __future__ import annotations

from pathlib import Path

import pytest

from takeover.agent.registration import AgentError
from takeover.agent.runtimes import node_watchdog
from takeover.agent.settings import AgentSettings
from takeover.agent.watchdog import Watchdog


def test_it_is_kept_alive_while_the_fence_is_live_and_disarmed_when_it_falls(tmp_path: Path) -> None:
    device = tmp_path / "watchdog"
    device.touch()
    watchdog = Watchdog(device, timeout=5)
    watchdog.tick(live=False)
    assert not watchdog.armed  # nothing acknowledged yet: never armed
    assert device.read_bytes() == b""
    for _ in range(3):
        watchdog.tick(live=True)
    assert watchdog.armed
    assert device.read_bytes() == b"\0\0\0"  # one keepalive per turn of the loop
    watchdog.tick(live=False)  # the fence fell and the agent stopped its workloads itself
    assert not watchdog.armed
    assert device.read_bytes() == b"\0\0\0V"  # the magic close: the driver stops counting
    device.write_bytes(b"")
    watchdog.tick(live=True)
    assert device.read_bytes() == b"\0"  # armed again once live


def test_a_watchdog_the_agent_cannot_write_is_refused_at_start(tmp_path: Path) -> None:
    settings = AgentSettings(takeover_url="http://127.0.0.1:9", NODE_WATCHDOG=str(tmp_path / "missing"))
    with pytest.raises(AgentError, match="NODE_WATCHDOG"):
        node_watchdog(settings)
    assert node_watchdog(AgentSettings(takeover_url="http://127.0.0.1:9")) is None
