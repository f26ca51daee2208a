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

from collections.abc import Sequence
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

    def elapsed(self) -> float:
        """Seconds on a clock that never steps (monotonic): for how long something lasted."""
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
    """Capacity to run an instance on: a pool node with a free slot (``source`` "pool"), or a
    machine a marketplace would rent (``source`` the provider's name)."""

    offer_id: str
    name: str
    region: str
    gpu_name: str | None
    num_gpus: int
    price_per_hour: float | None
    reliability: float  # 0..1
    free_slots: int
    source: str = "pool"
    spot: bool = False


class Provider(Protocol):
    """Where capacity comes from.

    Contract: ``offers`` are in ``region``, at or under ``max_price`` when one is given, of one
    of ``gpu_names`` when any is given (matched as ``takeover.domain.gpus.matches`` does), and
    come cheapest first, then most reliable. ``local`` offers the pool's own online nodes.
    """

    name: str

    def offers(
        self, region: str, max_price: float | None, gpu_names: Sequence[str] = (), spot: bool = False
    ) -> list[Offer]: ...


@dataclass(frozen=True, slots=True)
class RentRequest:
    """What a rented machine starts: ``image``, with ``env``, running the ``onstart`` script."""

    image: str
    env: dict[str, str]
    onstart: str
    disk_gb: int
    label: str  # the rental's label: how a machine is found again after a crash
    ports: tuple[str, ...] = ()  # ports inside to map to outside ones: "20000", "7947/udp"


@dataclass(frozen=True, slots=True)
class Machine:
    machine_id: str
    label: str | None
    status: str  # the marketplace's word: loading, running, exited, ...
    ssh_host: str | None = None
    ssh_port: int | None = None
    price_per_hour: float | None = None


class Marketplace(Provider, Protocol):
    """A provider that rents machines (tests/contracts/test_providers.py is its suite).

    Contract: ``rent`` returns the new machine, raises ``OfferGone`` when the offer was taken
    meanwhile, ``ProviderError`` when the marketplace refused (nothing rented), and
    ``ProviderUnavailable`` when the outcome is unknown (a machine may exist: look for its label);
    it is never retried on an unknown outcome, so one call rents at most one machine.
    ``machines`` lists every machine of the account whose label starts with ``prefix``;
    ``status`` is None for a machine that no longer exists; ``release`` of one that is gone is
    not an error. The API key is never logged or put into an error.
    """

    def rent(self, offer: Offer, request: RentRequest) -> Machine: ...
    def status(self, machine_id: str) -> Machine | None: ...
    def machines(self, prefix: str) -> list[Machine]: ...
    def release(self, machine_id: str) -> None: ...


__all__ = [
    "Clock",
    "Coordinator",
    "LeaseToken",
    "Machine",
    "Marketplace",
    "ObjectStore",
    "Offer",
    "Provider",
    "RentRequest",
]
