"""The leader lease in Redis (document 001's deployments, Sentinel included), fenced by the store.

Redis decides who leads; the store stays the fence. Controllers' writes check the store's lease
row in their own transaction (store.base.check_fence), so every token handed out here is first
recorded there, and the store takes it only if its epoch is above every other holder's. A Redis
that lost the lease (no persistence, or a Sentinel failover to a replica that had not received
it yet) would count epochs from 1 again: the store refuses such a token, and the lease in Redis
is raised past the store's epoch before it is used. So epochs only grow, whatever Redis forgets.

The scripts compare the caller's ``now``, not Redis's clock, like the store's lease: one
contract (ports.Coordinator), one suite of tests with an injected clock.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import redis
from redis.commands.core import Script
from redis.exceptions import RedisError

from takeover.domain.errors import StoreUnavailable
from takeover.ports import LeaseToken
from takeover.store.leases import StoreCoordinator

# KEYS[1]: the lease hash; ARGV: holder, now (µs), expiry (µs). The epoch taken, or nil.
_ACQUIRE = """
local held = redis.call('HMGET', KEYS[1], 'holder', 'epoch', 'expires')
local epoch = tonumber(held[2])
local now = tonumber(ARGV[2])
if not epoch then
  epoch = 1
elseif held[1] == ARGV[1] and tonumber(held[3]) > now then
  -- a renewal keeps the epoch
elseif tonumber(held[3]) <= now then
  epoch = epoch + 1
else
  return false
end
redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'epoch', epoch, 'expires', ARGV[3])
return epoch
"""

# ARGV: holder, epoch, new epoch. Raises the epoch only if the caller still holds it.
_RAISE = """
local held = redis.call('HMGET', KEYS[1], 'holder', 'epoch')
if held[1] ~= ARGV[1] or held[2] ~= ARGV[2] then return false end
redis.call('HSET', KEYS[1], 'epoch', ARGV[3])
return tonumber(ARGV[3])
"""

# ARGV: holder, epoch. Expires the lease now if the caller holds it.
_RELEASE = """
local held = redis.call('HMGET', KEYS[1], 'holder', 'epoch')
if held[1] ~= ARGV[1] or held[2] ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'expires', 0)
return 1
"""


class RedisCoordinator:
    """Coordinator port on Redis; ``fence`` is the store's coordinator, which records each token."""

    def __init__(self, client: redis.Redis, fence: StoreCoordinator, prefix: str = "takeover:lease:") -> None:
        self._client = client
        self._fence = fence
        self._prefix = prefix
        self._acquire = client.register_script(_ACQUIRE)
        self._raise = client.register_script(_RAISE)
        self._release = client.register_script(_RELEASE)

    def acquire(self, name: str, holder: str, ttl: timedelta, now: datetime) -> LeaseToken | None:
        expires = now + ttl
        key = [self._prefix + name]
        epoch = self._call(self._acquire, key, [holder, _micros(now), _micros(expires)])
        if epoch is None:
            return None
        token = LeaseToken(name, holder, int(epoch), expires)
        ahead = self._fence.record(token)
        if ahead is None:
            return token
        # Redis forgot epochs the store has seen: move past them, unless the lease moved on.
        raised = self._call(self._raise, key, [holder, token.epoch, ahead + 1])
        if raised is None:
            return None
        token = replace(token, epoch=int(raised))
        return token if self._fence.record(token) is None else None

    def release(self, token: LeaseToken) -> bool:
        self._fence.release(token)  # fenced off at once, whether or not Redis answers
        return bool(self._call(self._release, [self._prefix + token.name], [token.holder, token.epoch]))

    def current(self, name: str) -> LeaseToken | None:
        try:
            held = self._client.hmget(self._prefix + name, ["holder", "epoch", "expires"])
        except RedisError as error:
            raise StoreUnavailable(f"redis unavailable: {error}") from error
        holder, epoch, expires = held
        if holder is None or epoch is None or expires is None:
            return None
        at = datetime.fromtimestamp(int(expires) / 1_000_000, UTC)
        return LeaseToken(name, holder.decode() if isinstance(holder, bytes) else holder, int(epoch), at)

    @staticmethod
    def _call(script: Script, keys: list[str], args: list[str | int]) -> int | None:
        try:
            result = script(keys=keys, args=args)
        except RedisError as error:
            raise StoreUnavailable(f"redis unavailable: {error}") from error
        return None if result is None else int(result)


def _micros(at: datetime) -> int:
    return round(at.timestamp() * 1_000_000)
