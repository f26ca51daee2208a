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


def test_document_001_redis_sentinel_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_SENTINEL_ENABLED", "true")
    monkeypatch.setenv("REDIS_SENTINELS", "redis-sentinel-1:26379, redis-sentinel-2:26379,[::1]:26380")
    monkeypatch.setenv("REDIS_MASTER_NAME", "takeover")
    s = Settings(lease_backend="redis")
    assert s.sentinels == [("redis-sentinel-1", 26379), ("redis-sentinel-2", 26379), ("::1", 26380)]
    assert s.redis_master_name == "takeover"


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"redis_sentinel_enabled": True}, "needs REDIS_SENTINELS"),
        ({"redis_sentinel_enabled": True, "redis_sentinels": "sentinel-1"}, "'sentinel-1' is not host:port"),
        ({"redis_sentinel_enabled": True, "redis_sentinels": "s:99999"}, "'s:99999' is not host:port"),
        (
            {"redis_sentinel_enabled": True, "redis_sentinels": "s:1", "redis_url": "redis://r:6379"},
            "not both",
        ),
        ({"lease_backend": "redis"}, "LEASE_BACKEND=redis needs"),
    ],
)
def test_redis_settings_that_cannot_work_are_refused(values: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        Settings.model_validate(values)


def test_renting_settings_are_read_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAST_API_KEY", "k")
    monkeypatch.setenv("TAKEOVER_RENT_ENV", '{"TAKEOVER_SNAPSHOT_STORE": "s3://b/p"}')
    s = Settings(provider="vast", public_url="https://cp.example", vast_regions="br-south=br; us=US,ca")
    assert s.vast_api_key is not None
    assert s.vast_api_key.get_secret_value() == "k"
    assert s.rent_env == {"TAKEOVER_SNAPSHOT_STORE": "s3://b/p"}
    assert s.regions_of_vast == {"br-south": ("BR",), "us": ("US", "CA")}
    assert s.rent_max_hourly == 0.0  # nothing is rented until an operator sets a budget
    with pytest.raises(ValidationError, match="TAKEOVER_PROVIDER=vast needs TAKEOVER_PUBLIC_URL"):
        Settings(provider="vast")
    with pytest.raises(ValidationError, match="'br-south=Brazil' is not region=CC"):
        Settings(vast_regions="br-south=Brazil")


def test_a_strategy_alias_is_parsed_once_and_a_bad_name_lists_the_good_ones() -> None:
    assert Settings(default_strategy="snapshot_restore").default_strategy == "cpu_standby"
    with pytest.raises(ValidationError, match="unknown failover strategy 'fast'; use one of: warm_pool"):
        Settings(default_strategy="fast")
