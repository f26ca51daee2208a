"""Interfaces between the rules and the world, each with its contract.

Every adapter (the SQL store on SQLite and PostgreSQL, the in-memory coordinator of
``takeover.testing``) passes the shared suite in tests/contracts. The store itself has one
adapter, SQLAlchemy on SQLite or PostgreSQL, so it is used through ``takeover.store.Store``
and its contract is that suite run on both databases. Conventions for all ports:
a lost race returns ``False`` / ``None``; a refused request raises a branch of
``takeover.domain.errors``; an unknown outcome (backend unreachable) raises
``StoreUnavailable``. Every method that changes state is atomic: all of it or none of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol


@dataclass(frozen=True, slots=True)
class LeaseToken:
    """Proof of leadership: ``epoch`` grows by one each time the lease changes holder."""

    name: str
    holder: str
    epoch: int
    expires_at: datetime


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class Coordinator(Protocol):
    """A named leader lease with a fencing epoch.

    ``acquire`` takes the lease when it is free or expired (epoch + 1) or renews it when
    ``holder`` already holds it (same epoch); it returns None when someone else holds an
    unexpired lease. It completes in one round trip to the backend.
    """

    def acquire(self, name: str, holder: str, ttl: timedelta, now: datetime) -> LeaseToken | None: ...

    def release(self, token: LeaseToken) -> bool:
        """Give the lease up early so a successor need not wait for it to expire.

        False when ``token`` no longer holds it.
        """
        ...

    def current(self, name: str) -> LeaseToken | None: ...


__all__ = ["Clock", "Coordinator", "LeaseToken"]


class ObjectStore(Protocol):
    """Where snapshots live: chunks named by the SHA-256 of their content, and manifests.

    Contract: a put is all or nothing (a reader never sees part of an object); a chunk that is
    present has the content it was put with, unless storage itself damaged it, which is why
    ``chunk_size`` exists (a reused chunk is checked against the size it was stored with) and
    restores check every hash; ``quarantine_chunk`` takes a damaged chunk out of the way so the
    next put writes it anew; ``list_snapshots`` returns manifest ids sorted, without quarantined
    or deleted ones; ``list_instances`` the instances with at least one manifest; a missing
    object reads as None. Writing a chunk that exists is allowed and changes nothing.
    """

    def chunk_size(self, digest: str) -> int | None:
        """Stored (compressed) size in bytes, None when absent: one stat or HEAD, no read."""
        ...

    def put_chunk(self, digest: str, data: bytes) -> None: ...
    def get_chunk(self, digest: str) -> bytes | None: ...
    def quarantine_chunk(self, digest: str) -> None: ...
    def put_manifest(self, instance_id: str, snapshot_id: str, data: bytes) -> None: ...
    def get_manifest(self, instance_id: str, snapshot_id: str) -> bytes | None: ...
    def list_instances(self) -> list[str]: ...
    def list_snapshots(self, instance_id: str) -> list[str]: ...
    def quarantine(self, instance_id: str, snapshot_id: str) -> None: ...
    def delete_manifest(self, instance_id: str, snapshot_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Offer:
    """Capacity a provider can run an instance on now (for the local provider: a node with a free slot)."""

    offer_id: str
    name: str
    region: str
    gpu_name: str | None
    num_gpus: int
    price_per_hour: float | None
    reliability: float  # 0..1
    free_slots: int


class Provider(Protocol):
    """Where capacity comes from, for the strategies that need a new node in a region.

    ``local`` offers the pool's own online nodes (their agents run here already). A cloud adapter
    would offer machines it can rent and start ``takeover agent`` on; the strategies only see
    offers, so adding one does not touch them. Offers come cheapest first, then most reliable.
    """

    name: str

    def offers(self, region: str, max_price: float | None, gpu_name: str | None) -> list[Offer]: ...
