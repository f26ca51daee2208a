import pytest
from pydantic import ValidationError

from takeover.settings import Settings


def test_defaults_follow_the_documents() -> None:
    s = Settings(_env_file=None)
    assert (s.offline_after, s.heartbeat_interval) == (120.0, 30.0)
    assert s.controllers


def test_offline_after_must_exceed_fence_after_plus_margin() -> None:
    with pytest.raises(ValidationError, match=r"offline_after .* must exceed fence_after"):
        Settings(
            offline_after=10,
            fence_after=8,
            fence_margin=2,
            heartbeat_interval=1,
            monitor_interval=1,
            lease_ttl=5,
        )


def test_every_timing_error_is_reported_together() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(offline_after=5, fence_after=5, heartbeat_interval=10, monitor_interval=10, lease_ttl=5)
    message = str(caught.value)
    assert "offline_after" in message
    assert "heartbeat_interval" in message
    assert "lease_ttl" in message


def test_enable_cron_false_makes_a_replica_api_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENABLE_CRON", "false")
    assert not Settings().controllers
    monkeypatch.delenv("ENABLE_CRON")
    monkeypatch.setenv("TAKEOVER_CONTROLLERS", "0")
    assert not Settings().controllers
