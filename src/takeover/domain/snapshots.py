"""Which snapshot a new runner restores, and why snapshots are ordered by epoch first.

A runner at epoch E snapshots with E. A replaced runner (epoch < E) that takes a late snapshot
cannot shadow the current runner's data: the newest snapshot is the one with the highest
(epoch, time), and a runner starting at epoch E restores from epochs below E only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True, slots=True, order=True)
class SnapshotRef:
    epoch: int
    taken_at: datetime
    id: str

    @staticmethod
    def make(epoch: int, taken_at: datetime, suffix: str) -> SnapshotRef:
        stamp = taken_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        return SnapshotRef(epoch, taken_at, f"{epoch:012d}-{stamp}-{suffix}")

    @staticmethod
    def parse(snapshot_id: str) -> SnapshotRef:
        """The id carries its own ordering key, so listing needs no manifest reads."""
        try:
            epoch, stamp, _ = snapshot_id.split("-", 2)
            taken_at = datetime.strptime(stamp, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
            return SnapshotRef(int(epoch), taken_at, snapshot_id)
        except ValueError as exc:
            raise ValueError(f"not a snapshot id: {snapshot_id!r}") from exc


def stamp_after(now: datetime, floor: datetime | None) -> datetime:
    """A new snapshot's stamp: ``now``, but after ``floor`` (the newest of its epoch) whatever the
    clock says, so a clock stepped back never sorts a new snapshot as the oldest."""
    return now if floor is None else max(now, floor + timedelta(microseconds=1))


def to_prune(refs: Iterable[SnapshotRef], keep: int, taken: str) -> list[SnapshotRef]:
    """Of an instance's snapshots (with the one just ``taken``), those beyond the newest ``keep``,
    never ``taken`` itself whatever its place."""
    return [r for r in sorted(refs)[:-keep] if r.id != taken]


def restore_candidates(refs: Iterable[SnapshotRef], epoch: int) -> list[SnapshotRef]:
    """Snapshots a runner at ``epoch`` may restore, best first: earlier epochs, newest first."""
    return sorted((r for r in refs if r.epoch < epoch), reverse=True)


def newest_snapshot(*ids: str | None) -> str | None:
    """The newest of some snapshot ids by (epoch, time); unparsable ones are ignored."""
    refs = []
    for snapshot_id in ids:
        if snapshot_id:
            try:
                refs.append(SnapshotRef.parse(snapshot_id))
            except ValueError:
                continue
    return max(refs).id if refs else None


def empty_start_refusal(recovery_point: str | None, refused: Sequence[str], start_empty: bool) -> str | None:
    """Why a runner that found no snapshot to restore must not start empty; None when it may.

    An instance that has had a snapshot (the control plane knows one, or the store held some that
    failed verification) has data that starting empty would silently throw away. Only an
    operator's explicit ``start_empty`` accepts that.
    """
    if start_empty or (recovery_point is None and not refused):
        return None
    had = f"its newest known snapshot is {recovery_point}" if recovery_point else "it had snapshots"
    why = f" (refused: {'; '.join(refused)})" if refused else ""
    return (
        f"no snapshot could be restored{why}; {had}, so it will not start empty. "
        "Repair the snapshot store, or accept the loss: takeover failover start ID --start-empty"
    )
