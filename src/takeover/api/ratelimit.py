"""Requests per token and per client address in fixed windows; over the limit: 429 + Retry-After.

Every replica behind the balancer shares the counts: in Redis when one is configured
(TAKEOVER_REDIS_URL or Sentinel), in the store otherwise. Counts that cannot be reached let
requests through (logged): limiting must not take the control plane down with it. Probes and
metrics are never limited.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import redis
import structlog
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Receive, Scope, Send

from takeover.domain.errors import StoreUnavailable
from takeover.store.ratecounts import Hits

log = structlog.get_logger("takeover.ratelimit")
EXEMPT = frozenset({"/livez", "/readyz", "/healthz", "/metrics"})


@dataclass(frozen=True, slots=True)
class Limits:
    per_token: int  # requests per window; 0: no limit
    per_address: int
    window: float  # seconds
    trusted_proxies: frozenset[str] = frozenset()  # their X-Forwarded-For names the client


class Counts(Protocol):
    async def hit(self, key: str, window: int, ttl: float) -> int:
        """Count one request for ``key`` in window number ``window``; the count so far."""
        ...

    def start(self) -> None: ...

    def close(self) -> None: ...


class StoreCounts:
    """Counts shared through the store, for replicas without Redis.

    Hits are added to the store's counts every ``sync`` seconds in one transaction (0: on every
    request), so a request costs no store write. Between syncs a replica knows the others' hits
    as of its last sync: the limit can be passed by what the other replicas count in one sync.
    A store that does not answer keeps the hits for the next sync and lets requests through.
    """

    def __init__(self, add: Callable[[Hits], Hits], sync: float) -> None:
        self._add = add
        self._sync = sync
        self._pending: Hits = {}
        self._known: Hits = {}  # every replica's count at the last sync
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._syncer: threading.Thread | None = None

    async def hit(self, key: str, window: int, ttl: float) -> int:  # noqa: ARG002 - rows expire by window
        if self._sync == 0:
            totals = await asyncio.to_thread(self._add, {(key, window): 1})
            return totals[key, window]
        with self._lock:
            pending = self._pending[key, window] = self._pending.get((key, window), 0) + 1
            return self._known.get((key, window), 0) + pending

    def sync(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return
        try:
            totals = self._add(pending)
        except StoreUnavailable as error:
            with self._lock:
                for hit, count in pending.items():
                    self._pending[hit] = self._pending.get(hit, 0) + count
            log.warning("rate limit counts not shared this time; kept for the next sync", error=str(error))
            return
        with self._lock:
            newest = max(window for _, window in totals)
            self._known = {hit: n for hit, n in self._known.items() if hit[1] >= newest - 1}
            self._known.update(totals)

    def start(self) -> None:
        """Sync in the background until ``close`` (without it, each replica counts alone)."""
        if self._sync > 0 and self._syncer is None:
            self._syncer = threading.Thread(target=self._run, name="rate-count-sync", daemon=True)
            self._syncer.start()

    def close(self) -> None:
        self._stop.set()
        if self._syncer is not None:
            self._syncer.join()
        self.sync()

    def _run(self) -> None:
        while not self._stop.wait(self._sync):
            self.sync()


class RedisCounts:
    """A blocking client on a worker thread: unlike redis.asyncio's, it is bound to no event loop."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def start(self) -> None:
        pass  # every hit goes to Redis

    def close(self) -> None:
        self.redis.close()

    async def hit(self, key: str, window: int, ttl: float) -> int:
        return await asyncio.to_thread(self._hit, f"takeover:rate:{key}:{window}", ttl)

    def _hit(self, name: str, ttl: float) -> int:
        with self.redis.pipeline(transaction=True) as pipe:  # MULTI: both or neither
            pipe.incr(name)
            pipe.pexpire(name, math.ceil(ttl * 1000))
            count, _ = pipe.execute()
        return int(count)


class RateLimit:
    """Pure ASGI middleware: one counter per check, no request body read."""

    def __init__(
        self, app: ASGIApp, limits: Limits, counts: Counts, clock: Callable[[], float] = time.time
    ) -> None:
        self.app = app
        self.limits = limits
        self.counts = counts
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT:
            await self.app(scope, receive, send)
            return
        now = self.clock()
        window = int(now // self.limits.window)
        for key, limit, per in self._checks(scope):
            try:
                count = await self.counts.hit(key, window, 2 * self.limits.window)
            except (RedisError, StoreUnavailable) as error:
                log.warning("rate limit counts unavailable; letting the request through", error=str(error))
                break
            if count > limit:
                retry = math.ceil((window + 1) * self.limits.window - now)
                await _refuse(send, limit, self.limits.window, per, retry)
                return
        await self.app(scope, receive, send)

    def _checks(self, scope: Scope) -> list[tuple[str, int, str]]:
        checks = []
        if self.limits.per_address and scope.get("client"):
            address = self._client(scope["client"][0], scope["headers"])
            checks.append((f"address:{address}", self.limits.per_address, "client address"))
        if self.limits.per_token:
            for name, value in scope["headers"]:
                if name == b"authorization":  # counted by what is presented, valid or not
                    digest = hashlib.sha256(value).hexdigest()[:32]
                    checks.append((f"token:{digest}", self.limits.per_token, "token"))
                    break
        return checks

    def _client(self, peer: str, headers: list[tuple[bytes, bytes]]) -> str:
        """The peer, or behind trusted proxies the last address they did not add themselves."""
        if peer not in self.limits.trusted_proxies:
            return peer  # a client's own X-Forwarded-For is not believed
        hops = [
            h.strip() for n, v in headers if n == b"x-forwarded-for" for h in v.decode("latin-1").split(",")
        ]
        for hop in reversed(hops):
            if hop and hop not in self.limits.trusted_proxies:
                return hop
        return peer


async def _refuse(send: Send, limit: int, window: float, per: str, retry: int) -> None:
    body = json.dumps(
        {
            "detail": f"rate limit: more than {limit} requests per {window:g} s per {per}; retry after {retry} s"
        }
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(retry).encode()),
    ]
    await send({"type": "http.response.start", "status": 429, "headers": headers})
    await send({"type": "http.response.body", "body": body})
