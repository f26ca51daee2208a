"""What the console's templates print: ages, short ids, pages of rows, region summaries."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar
from uuid import UUID

from takeover.domain.snapshots import SnapshotRef

T = TypeVar("T")
U = TypeVar("U")
SHORT_ID = 8


def age(then: datetime | None, now: datetime) -> str:
    if then is None:
        return "never"
    seconds = (now - then).total_seconds()
    if seconds < 0:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"


def short(value: UUID | str | None) -> str:
    return str(value)[:SHORT_ID] if value else "-"


class Names(dict[str, str]):
    """Names by id, for ids held as UUIDs or as text (attempt logs keep text)."""

    def of(self, key: UUID | str | None) -> str:
        return self.get(str(key)) or short(key)


def snapshot_taken(snapshot_id: str | None) -> datetime | None:
    if not snapshot_id:
        return None
    try:
        return SnapshotRef.parse(snapshot_id).taken_at
    except ValueError:
        return None


def millis(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of rows; the page number is clamped, so a stale link still shows something."""

    rows: Sequence[T]
    number: int
    pages: int
    total: int

    @classmethod
    def of(cls, rows: Sequence[T], number: int, size: int) -> Page[T]:
        pages = max(1, -(-len(rows) // size))
        number = min(max(1, number), pages)
        return cls(rows[(number - 1) * size : number * size], number, pages, len(rows))

    @classmethod
    def read(cls, fetch: Callable[[int, int], tuple[Sequence[T], int]], number: int, size: int) -> Page[T]:
        """One page read by ``fetch(offset, limit) -> (rows, total)``: a store that reads only it;
        past the end, the last page is read instead."""
        number = max(1, number)
        rows, total = fetch((number - 1) * size, size)
        pages = max(1, -(-total // size))
        if number > pages:
            number = pages
            rows, total = fetch((number - 1) * size, size)
        return cls(rows, number, pages, total)

    def map(self, shown: Callable[[T], U]) -> Page[U]:
        """The page's rows as the template shows them (only these are converted)."""
        return Page([shown(r) for r in self.rows], self.number, self.pages, self.total)


def status_counts(pairs: Sequence[tuple[str, str]]) -> dict[str, Counter[str]]:
    """(region, status) pairs to each region's count of nodes per status."""
    counts: dict[str, Counter[str]] = {}
    for region, status in pairs:
        counts.setdefault(region, Counter())[status] += 1
    return dict(sorted(counts.items()))


__all__ = ["Names", "Page", "age", "millis", "short", "snapshot_taken", "status_counts"]


@dataclass(frozen=True)
class Said:
    """An action's answer with its tone: ok (done), warn (answered, but not as hoped)."""

    message: str
    tone: str = "ok"
