"""A Redis client from the settings: one server (TAKEOVER_REDIS_URL) or the master Sentinel names.

Calls are bounded: a short socket timeout and few retries, because both users (rate limits on
every request, the leader lease every cycle) must not wait on a Redis that does not answer.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from takeover.settings import Settings

TIMEOUT = 0.5  # seconds, per connect and per reply


def redis_client(settings: Settings, *, retries: int) -> redis.Redis | None:
    """None when no Redis is configured. ``retries`` reconnect after a dropped connection
    (a restarted server, a Sentinel failover); each waits at most TIMEOUT."""
    password = settings.redis_password.get_secret_value() if settings.redis_password is not None else None
    options = {
        "socket_timeout": TIMEOUT,
        "socket_connect_timeout": TIMEOUT,
        "retry": Retry(NoBackoff(), retries),
        "password": password,
    }
    if settings.redis_sentinel_enabled:
        # Through Any: redis-py typed Sentinel only in later 8.x releases; this works with both.
        sentinel_class: Any = Sentinel
        sentinel = sentinel_class(
            settings.sentinels, sentinel_kwargs={"socket_timeout": TIMEOUT, "socket_connect_timeout": TIMEOUT}
        )
        master: redis.Redis = sentinel.master_for(settings.redis_master_name, **options)
        return master
    if settings.redis_url:
        return redis.Redis.from_url(settings.redis_url, **options)
    return None
